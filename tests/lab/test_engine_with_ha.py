"""The engine API (lab/engine) driving the lab's HA model, through the real ovirtsdk4."""

import time

import ovirtsdk4 as sdk


def connect(lab):
    engine = lab.manifest["engine"]
    return sdk.Connection(url=engine["url"], username=engine["username"],
                          password=engine["password"], ca_file=engine["ca_file"], timeout=30)


def host_status(hosts, name):
    return hosts.list(search=f"name={name}")[0].status.value


def wait(predicate, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def test_deactivating_the_vm_host_migrates_the_engine_and_enters_local_maintenance(fresh_lab, fresh_ssh):
    connection = connect(fresh_lab)
    try:
        hosts = connection.system_service().hosts_service()
        he1 = next(h for h in hosts.list(all_content=True) if h.address == "he1.lab.local"
                   or h.name.startswith("he1"))
        assert he1.hosted_engine.score == 3400
        assert he1.hosted_engine.active is True
        hosts.host_service(he1.id).deactivate()
        state = fresh_lab.wait_for(
            lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "LocalMaintenance" and s,
            sim_seconds=200)
        # the engine live-migrated its own VM; the agents never do
        assert state["engine_vm"]["host"] in ("he2.lab.local", "he3.lab.local")
        assert "EngineUp-EngineMaybeAway" in state["hosts"]["he1.lab.local"]["transitions"]
        wait(lambda: hosts.host_service(he1.id).get().status.value == "maintenance")
        assert fresh_ssh("he2", "hosted-engine --vm-status --json").json["1"]["maintenance"] is True
        hosts.host_service(he1.id).activate()
        fresh_lab.wait_for(lambda s: s["hosts"]["he1.lab.local"]["agent_state"] == "EngineDown"
                           and s["hosts"]["he1.lab.local"]["score"] == 3400, sim_seconds=120)
    finally:
        connection.close()
