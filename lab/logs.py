"""The log files admins grep on a host, written where the real daemons write them.

The agent's and the broker's lines use the long format of their logging configuration
(ovirt-hosted-engine-ha, agent/agent-log.conf.in and broker/broker-log.conf.in):
`thread::LEVEL::date,ms::module::line::logger::(function) message`; vdsm.log uses the same
layout. A line is appended only while the log's directory exists, so a host whose logs an
admin removed stays without them, as with a daemon whose file was deleted under it.
"""

import time

AGENT_LOG = "/var/log/ovirt-hosted-engine-ha/agent.log"
BROKER_LOG = "/var/log/ovirt-hosted-engine-ha/broker.log"
VDSM_LOG = "/var/log/vdsm/vdsm.log"
HE = "ovirt_hosted_engine_ha.agent.hosted_engine.HostedEngine"
STATES = "ovirt_hosted_engine_ha.agent.states"
UPGRADE = "395::ovirt_hosted_engine_ha.lib.upgrade.Upgrade::(upgrade_35_36)"


def stamp(wall):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall)) + f",{int(wall % 1 * 1000):03d}"


def line(wall, where, message, level="INFO", thread="MainThread"):
    """`where` is "module::lineno::logger::(function)"."""
    return f"{thread}::{level}::{stamp(wall)}::{where} {message}\n"


def state_class(state):
    return f"<class '{STATES}.{state}'>"


def agent(host, wall, where, message, level="INFO"):
    host.fs.append(AGENT_LOG, line(wall, where, message, level))


def broker(host, wall, where, message, level="INFO", thread="Thread-1"):
    host.fs.append(BROKER_LOG, line(wall, where, message, level, thread))


def vdsm(host, wall, where, message, level="INFO", thread="MainThread"):
    host.fs.append(VDSM_LOG, line(wall, where, message, level, thread))
