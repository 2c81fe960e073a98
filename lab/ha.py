"""ovirt-ha-agent: one state machine per host, publishing to the shared whiteboard.

Each state is a small function `(agent, view) -> (next_state, nowait)`, following the
table in ovirt-facts.md §5. `view` is what the agent's broker told it this loop.
"""

import collections
import logging
import time

from . import catalog, distro, logs, vm

log = logging.getLogger(__name__)

LOOP_DELAY = 10
HOST_ALIVE_TIMEOUT = 60
ENGINE_STARTING_TIMEOUT = 600
ENGINE_BAD_HEALTH_TIMEOUT = 300
ENGINE_STOP_TIMEOUT = 300
ENGINE_AWAY_EXPIRATION = 40
VM_UNEXPECTED_SHUTDOWN_EXPIRATION = 560
LEGACY_UNEXPECTED_SHUTDOWN_EXPIRATION = 600  # HA 1.x (agent/constants.py.in)
RETRY_MAX = 3
RETRY_EXPIRATION = 600
HANDOVER_MARGIN = 800
NETWORK_PENALTY = 1600  # the gateway test fails on a disconnected host
NOT_UPTODATE_CONF_PENALTY = 1000  # HA 1.3+: a 3.5 host's configuration not converted yet

ZERO_SCORE_STATES = {"LocalMaintenance", "LocalMaintenanceMigrateVm", "EngineUnexpectedlyDown",
                     "ReinitializeFSM", "AgentStopped", "StartState"}


class View:
    """One loop's inputs: flags, the local engine status and the live remote hosts."""

    def __init__(self, agent, cluster, now):
        host = agent.host
        self.now = now
        self.global_maintenance = cluster.global_maintenance
        self.local_maintenance = host.local_maintenance or host.local_maintenance_manual
        self.status = vm.engine_status(cluster, host, now, legacy=agent.legacy)
        self.remotes = [seg for seg in cluster.live_segments(agent.host_id, now)
                        if seg["host-id"] != agent.host_id]

    @property
    def vm(self):
        return self.status["vm"]

    def up_elsewhere(self):
        return any(seg["engine-status"]["vm"] == "up" for seg in self.remotes)

    def best_remote_score(self):
        return max((seg["score"] for seg in self.remotes if seg["score"] > 0), default=0)

    def best_remote(self):
        """The live remote host with the best positive score, or None."""
        candidates = [seg for seg in self.remotes if seg["score"] > 0]
        return max(candidates, key=lambda seg: seg["score"], default=None)


def check_gul(agent, view, local=True):
    """The G/U/L checks every state runs first (facts §5)."""
    if view.global_maintenance:
        return "GlobalMaintenance"
    if view.vm == "unknown":
        return "UnknownLocalVmState"
    if local and view.local_maintenance:
        return "LocalMaintenance"
    return None


def gul_first(fn):
    """EngineStart, EngineStop and EngineForceStop run the G/U/L checks first in every
    release: the check_global_maintenance, check_local_maintenance and
    check_local_vm_unknown decorators of agent/states.py at 1.2.10, 1.3.5.6, v2.3.6, v2.5.1."""
    def state(agent, view):
        if (nxt := check_gul(agent, view)):
            return nxt, False
        return fn(agent, view)
    return state


def reinitialize_fsm(agent, view):
    if (nxt := check_gul(agent, view)):
        return nxt, False
    if view.vm == "up":
        return "EngineStarting", True
    return "EngineDown", False


def engine_down(agent, view):
    if (nxt := check_gul(agent, view)):
        return nxt, False
    if view.vm == "up":
        return "EngineStarting", False
    if view.up_elsewhere() or agent.history(view.now) < HOST_ALIVE_TIMEOUT:
        return "EngineDown", False
    if agent.score(view) > 0 and agent.score(view) >= view.best_remote_score():
        return "EngineStart", True
    return "EngineDown", False


@gul_first
def engine_start(agent, view):
    ok = agent.start_vm(view.now)
    if ok:
        return "EngineStarting", False
    agent.retry_count += 1
    agent.retry_at = view.now
    return "EngineDown", False


def engine_starting(agent, view):
    if agent.timed_out(view.now, ENGINE_STARTING_TIMEOUT):
        return "EngineStop", False
    if (nxt := check_gul(agent, view)):
        return nxt, False
    if view.vm == "up":
        return ("EngineUp" if view.status["health"] == "good" else "EngineStarting"), False
    if view.vm == "already_locked":
        return "EngineForceStop", True  # HA 1.x: another host took the lease
    if view.vm in ("down", "down_unexpected"):
        # 1.x: the VM is simply gone; 2.x: lost the lease race or never started,
        # power off and retry.
        return ("EngineUnexpectedlyDown" if agent.legacy else "EngineForceStop"), False
    return ("EngineUnexpectedlyDown" if agent.legacy else "EngineMaybeAway"), False


def engine_up(agent, view):
    if agent.legacy:
        return legacy_engine_up(agent, view)
    if (nxt := check_gul(agent, view, local=False)):
        return nxt, False
    if view.vm == "down":
        return "EngineMaybeAway", False
    if view.vm == "down_unexpected":
        return "EngineUnexpectedlyDown", False
    if view.up_elsewhere():
        return "EngineStop", False
    if view.best_remote_score() >= agent.score(view) + HANDOVER_MARGIN:
        log.info("%s: remote host scores higher, handing the engine VM over", agent.host.name)
        return "EngineStop", False
    if view.status["health"] != "good":
        return "EngineUpBadHealth", False
    return "EngineUp", False


def legacy_engine_up(agent, view):
    """HA 1.x EngineUp: local maintenance makes the agent migrate the VM away itself;
    there is no EngineMaybeAway (agent/states.py at 1.2.10 and 1.3.5.6)."""
    if (nxt := check_gul(agent, view, local=False)):
        return nxt, False
    if view.local_maintenance:
        return "LocalMaintenanceMigrateVm", True
    if view.status["detail"] == "migration source":
        return "EngineMigratingAway", False
    if view.vm != "up" or view.up_elsewhere():
        return "EngineUnexpectedlyDown", True
    if view.best_remote_score() >= agent.score(view) + HANDOVER_MARGIN:
        return "EngineStop", False
    if view.status["health"] != "good":
        return "EngineUpBadHealth", False
    return "EngineUp", False


def local_maintenance_migrate_vm(agent, view):
    if (nxt := check_gul(agent, view, local=False)):
        return nxt, False
    best = view.best_remote()
    if best is None or not agent.migrate_vm(best["hostname"], view.now):
        return "EngineStop", False
    return "EngineMigratingAway", False


def engine_migrating_away(agent, view):
    if (nxt := check_gul(agent, view, local=False)):
        return nxt, False
    if view.status["detail"] == "migration source":
        return "EngineMigratingAway", False
    if view.vm == "down":
        return "EngineDown", False
    return "ReinitializeFSM", False


def engine_up_bad_health(agent, view):
    if agent.timed_out(view.now, ENGINE_BAD_HEALTH_TIMEOUT):
        return "EngineStop", False
    return engine_up(agent, view)


@gul_first
def engine_stop(agent, view):
    if agent.timed_out(view.now, ENGINE_STOP_TIMEOUT):
        return "EngineForceStop", False
    if view.vm != "up":
        return "EngineDown", False
    if not agent.stop_requested:
        agent.stop_requested = True
        if not agent.shutdown_vm(view.now):
            return "ReinitializeFSM", False
    if view.status["detail"] == "Paused":
        return "EngineForceStop", False
    return "EngineStop", False


@gul_first
def engine_force_stop(agent, view):
    agent.poweroff_vm(view.now)
    return "EngineDown", False


def engine_maybe_away(agent, view):
    if agent.timed_out(view.now, ENGINE_AWAY_EXPIRATION):
        return "EngineUnexpectedlyDown", False
    if (nxt := check_gul(agent, view)):
        return nxt, False
    if view.vm == "down":
        return "EngineDown", False
    if view.vm == "down_unexpected":
        return "EngineUnexpectedlyDown", False
    if view.vm == "up":
        return "EngineUp", False
    if view.up_elsewhere():
        return "EngineDown", False
    return "EngineMaybeAway", False


def engine_unexpectedly_down(agent, view):
    if agent.timed_out(view.now, agent.unexpected_down_expiration):
        return "EngineDown", False
    if (nxt := check_gul(agent, view)):
        return nxt, False
    if view.vm == "up":
        return "EngineUp", False
    return "EngineUnexpectedlyDown", False


def local_maintenance(agent, view):
    if not view.local_maintenance:
        return "ReinitializeFSM", False
    return "LocalMaintenance", False


def global_maintenance(agent, view):
    if not view.global_maintenance:
        return ("LocalMaintenance" if view.local_maintenance else "ReinitializeFSM"), False
    return "GlobalMaintenance", False


def unknown_local_vm_state(agent, view):
    if view.global_maintenance:
        return "GlobalMaintenance", False
    if view.vm == "unknown":
        return "UnknownLocalVmState", False
    if view.local_maintenance:
        return "LocalMaintenance", False
    return "ReinitializeFSM", False


STATES = {
    "StartState": lambda agent, view: ("ReinitializeFSM", True),
    "ReinitializeFSM": reinitialize_fsm,
    "EngineDown": engine_down,
    "EngineStart": engine_start,
    "EngineStarting": engine_starting,
    "EngineUp": engine_up,
    "EngineUpBadHealth": engine_up_bad_health,
    "EngineStop": engine_stop,
    "EngineForceStop": engine_force_stop,
    "EngineMaybeAway": engine_maybe_away,
    "EngineUnexpectedlyDown": engine_unexpectedly_down,
    "LocalMaintenance": local_maintenance,
    "GlobalMaintenance": global_maintenance,
    "UnknownLocalVmState": unknown_local_vm_state,
    "LocalMaintenanceMigrateVm": local_maintenance_migrate_vm,
    "EngineMigratingAway": engine_migrating_away,
}
# States whose metadata carries `timeout=` (their metadata() in agent/states.py, the same
# three at 1.2.10, 1.3.5.6, v2.3.6 and v2.5.1): time.ctime of the state's start plus the
# limit, the start counted on the agent's monotonic clock (state_machine.py `refresh`:
# collect_start = int(monotonic.time())), so every release shows an early date.
TIMEOUTS = {"EngineUpBadHealth": ENGINE_BAD_HEALTH_TIMEOUT,
            "EngineUnexpectedlyDown": VM_UNEXPECTED_SHUTDOWN_EXPIRATION,
            "EngineStop": ENGINE_STOP_TIMEOUT}
# The states whose time is bounded (check_timeout in states.py): the agent logs
# "Timeout set to ..." on entering one, what the howto's FAQ says to grep for.
LOGGED_TIMEOUTS = {"EngineStarting": ENGINE_STARTING_TIMEOUT, "EngineStop": ENGINE_STOP_TIMEOUT,
                   "EngineUpBadHealth": ENGINE_BAD_HEALTH_TIMEOUT,
                   "EngineMaybeAway": ENGINE_AWAY_EXPIRATION,
                   "EngineUnexpectedlyDown": VM_UNEXPECTED_SHUTDOWN_EXPIRATION}


class Agent:
    """The agent process of one host; lives from service start to stop or power loss."""

    def __init__(self, cluster, host):
        self.cluster = cluster
        self.host = host
        self.host_id = host.host_id  # read from hosted-engine.conf once, at start
        self.version = host.packages.get("ovirt-hosted-engine-ha", "0")
        host.running_ha_version = self.version
        self.legacy = not catalog.at_least(self.version, "2.0")  # HA 1.x (oVirt 3.5/3.6)
        self.v25 = catalog.at_least(self.version, "2.5")
        self.v13 = catalog.at_least(self.version, "1.3")
        self.unexpected_down_expiration = (LEGACY_UNEXPECTED_SHUTDOWN_EXPIRATION if self.legacy
                                           else VM_UNEXPECTED_SHUTDOWN_EXPIRATION)
        now = cluster.clock.now()
        self.started_at = now
        self.state = "StartState"
        self.entered = now
        self.retry_count = 0
        self.retry_at = None
        self.stop_requested = False
        # facts §6: an agent started under local maintenance publishes nothing until
        # the flag clears, so the others see it as stale.
        self.silent = self.v25 and (host.local_maintenance or host.local_maintenance_manual)
        # Fault agent-stays-down: this agent does not get past its initialisation, as one
        # that cannot reach its storage or broker (see step).
        self.stuck = host.agent_stays_down
        self.task = None
        # The broker's state-transition notifications (`Old-New`), newest last.
        self.transitions = collections.deque(maxlen=30)
        self.logged = None  # (state, score) last written to agent.log
        self.log("agent::65::ovirt_hosted_engine_ha.agent.agent.Agent::(run)",
                 f"ovirt-hosted-engine-ha agent {self.version.rsplit('-', 1)[0]} started")
        self.conf_uptodate = self.upgrade_conf()
        # vm.conf, fetched from the shared storage at start, into a tmpfs (/run)
        if self.host_id is not None and host.fs.exists("/run"):
            host.fs.write(distro.VM_CONF, f"vmId={vm.VM_ID}\nmemSize=4096\n")

    def upgrade_conf(self):
        """HA 1.3+ converts a 3.5 host's configuration (upgrade_35_36 in lib/upgrade.py),
        but only while the engine has the host in maintenance; else the host keeps its
        old configuration, and a score lowered by not-uptodate-config-penalty."""
        if self.host_id is None or self.version_key_below("1.3") or distro.conf_uptodate(self.host):
            return True
        self.log(f"upgrade::{logs.UPGRADE}", "Upgrading to current version")
        if not self.cluster.in_engine_maintenance(self.host):
            self.log(f"upgrade::{logs.UPGRADE}",
                     "Unable to upgrade while not in maintenance mode: please put this host into "
                     "maintenance mode from the engine, and manually restart this service when "
                     "ready", level="ERROR")
            return False
        distro.convert_conf(self.host)
        self.log(f"upgrade::{logs.UPGRADE}", "Successfully upgraded")
        return True

    def version_key_below(self, floor):
        return not catalog.at_least(self.version, floor)

    def log(self, where, message, level="INFO"):
        logs.agent(self.host, self.cluster.clock.wall(), where, message, level=level)

    def history(self, now):
        return now - self.started_at

    def timed_out(self, now, seconds):
        return now - self.entered >= seconds

    def score(self, view):
        if self.state in ZERO_SCORE_STATES:
            return 0
        if self.retry_at is not None and view.now - self.retry_at > RETRY_EXPIRATION:
            self.retry_count = 0
        if self.retry_count > RETRY_MAX:
            return 0
        score = catalog.base_score(self.version) - 50 * self.retry_count
        if self.host.disconnected:
            score -= NETWORK_PENALTY
        if not self.conf_uptodate:
            score -= NOT_UPTODATE_CONF_PENALTY
        return max(0, score)

    def start_vm(self, now):
        ok, _ = vm.vm_start(self.cluster, self.host, now)
        if ok:
            self.retry_count = 0
        return ok

    def shutdown_vm(self, now):
        return vm.vm_shutdown(self.cluster, self.host, now)[0]

    def poweroff_vm(self, now):
        vm.vm_poweroff(self.cluster, self.host, now)

    def migrate_vm(self, dest_name, now):
        """HA 1.x asks vdsm to migrate the VM itself (LocalMaintenanceMigrateVm)."""
        dest = self.cluster.hosts.get(dest_name)
        if dest is None or vm.running_status(self.host) != "Up" or not self.cluster.reachable(dest):
            return False
        vm.start_migration(self.cluster, self.host, dest, now)
        return True

    def step(self):
        """One loop iteration; returns True when the next one should run at once."""
        now = self.cluster.clock.now()
        self.cluster.advance(now)
        if self.cluster.lockspace_corrupt or not self.host.services["ovirt-ha-broker"]:
            # The real agent dies at start-up here and systemd restarts it every 10 s.
            return False
        if self.stuck and not self.recovered(now):
            return False
        view = View(self, self.cluster, now)
        nxt, nowait = STATES[self.state](self, view)
        if nxt != self.state:
            self.transition(nxt, now)
        if self.silent and not view.local_maintenance:
            self.silent = False
        if not self.silent:
            self.publish(view)
        if (self.state, self.score(view)) != self.logged:
            self.logged = (self.state, self.score(view))
            self.log(f"hosted_engine::531::{logs.HE}::(start_monitoring)",
                     f"Current state {self.state} (score: {self.score(view)})")
        return nowait

    def recovered(self, now):
        """A stuck agent (fault agent-stays-down): its initialisation fails before the
        monitoring loop, so it publishes nothing; agent.py logs the error, exits, and
        systemd starts it again 10 s later (agent/agent.py `_run_agent`, 2.5.1). Once the
        fault is lifted, the next try comes up as a fresh start."""
        if self.host.agent_stays_down:
            self.log("agent::144::ovirt_hosted_engine_ha.agent.agent.Agent::(_run_agent)",
                     "Trying to restart agent", level="ERROR")
            self.log("agent::89::ovirt_hosted_engine_ha.agent.agent.Agent::(run)",
                     "Agent shutting down")
            return False
        self.stuck = False
        self.started_at = self.entered = now
        self.log("agent::65::ovirt_hosted_engine_ha.agent.agent.Agent::(run)",
                 f"ovirt-hosted-engine-ha agent {self.version.rsplit('-', 1)[0]} started")
        return True

    def transition(self, nxt, now):
        log.info("%s: %s-%s", self.host.name, self.state, nxt)
        self.transitions.append(f"{self.state}-{nxt}")
        self.log("brokerlink::67::ovirt_hosted_engine_ha.lib.brokerlink.BrokerLink::(notify)",
                 f"Success, was notification of state_transition ({self.state}-{nxt}) sent? sent")
        if nxt in LOGGED_TIMEOUTS:
            limit = LOGGED_TIMEOUTS[nxt]
            if nxt == "EngineUnexpectedlyDown":
                limit = self.unexpected_down_expiration
            deadline = time.ctime(self.cluster.clock.wall() + limit)
            self.log(f"state_decorators::99::{logs.HE}::(check)",
                     f"Timeout set to {deadline} while transitioning {logs.state_class(nxt)} "
                     f"-> {logs.state_class(nxt)}")
        self.state = nxt
        self.entered = now
        self.stop_requested = False

    def publish(self, view, stopped=False):
        # series: the extra block's shape (vmstatus.extra_text)
        extra = {"series": "2" if not self.legacy else ("1.3" if self.v13 else "1.2")}
        if self.state in TIMEOUTS:
            limit = TIMEOUTS[self.state]
            if self.state == "EngineUnexpectedlyDown":
                limit = self.unexpected_down_expiration
            left = limit - (view.now - self.entered)
            # a monotonic deadline printed with ctime: a 1970 date
            extra["timeout"] = time.ctime(self.cluster.host_ts(self.host, view.now) + left)
        self.cluster.publish(self.host, self.host_id, view.now, state=self.state,
                             score=self.score(view),
                             engine_status=view.status, stopped=stopped,
                             maintenance=self.state == "LocalMaintenance", extra=extra,
                             conf_on_shared_storage=self.conf_uptodate)

    async def run(self):
        while True:
            try:
                nowait = self.step()
            except Exception:
                log.exception("%s: agent loop failed", self.host.name)
                nowait = False
            await self.cluster.clock.sleep(0.05 if nowait else LOOP_DELAY)

    def stop_cleanly(self):
        """systemctl stop: publish AgentStopped once (score 0, stopped=True)."""
        self.state = "AgentStopped"
        self.log("agent::101::ovirt_hosted_engine_ha.agent.agent.Agent::(run)",
                 "Agent shutting down")
        # A stuck agent never reached its monitoring loop, whose end publishes AgentStopped;
        # nor does one that keeps dying at start-up on a corrupted lockspace or without a
        # broker (so --reinitialize-lockspace needs --force then, ovirt-releases.md).
        # HA 1.2 has no AgentStopped (agent/states.py at 1.2.10): its block keeps its last state.
        if self.v13 and not self.silent and not self.stuck and self.host_id is not None \
                and not self.cluster.lockspace_corrupt and self.host.services["ovirt-ha-broker"]:
            now = self.cluster.clock.now()
            self.publish(View(self, self.cluster, now), stopped=True)
