"""The howto's "Restarting from a partially deployed system".

``hosted-engine --deploy`` always writes an answer file in its clean-up stage,
also when it breaks, under /var/lib/ovirt-hosted-engine-setup/answers/ (one
``answers-YYYYMMDDHHMMSS.conf`` per run, so the newest sorts last). Rerun
with ``--config-append=<it>``, the setup finds the VM it created on the same
storage and offers "(1) Continue setup - VM installation is complete". The
file is looked up on the host inside the command itself, so no host output
ever becomes part of a command.

Two branches, as the howto has them: the VM's OS is already installed (the
setup is answered (1), then Enter at "Please install the engine in the VM"
— the engine in the VM must be set up, as the deployment left it), or it is
not, and a person reruns the deployment at the VM's console. Passwords in
the shown answer file are masked.
"""
from .base import Check, Manual, Param, Runbook, Ssh, Wait

ANSWERS_DIR = "/var/lib/ovirt-hosted-engine-setup/answers"
FIND = (f"answers=$(ls -1 {ANSWERS_DIR}/answers-*.conf 2>/dev/null | tail -n 1)\n"
        f"if [ -z \"$answers\" ]; then echo \"no answer file in {ANSWERS_DIR}/\"; exit 1; fi\n")
SHOW = FIND + ("echo \"latest answer file: $answers\"\n"
               r"sed -E 's/^([^=]*[Pp]assword[^=]*=[a-z]+:).*/\1(hidden)/' " + "\"$answers\"")
# The restart menu's (1), then Enter at "Please install the engine in the VM, hit enter
# when finished." Everything else comes from the answer file.
RERUN = FIND + ("echo \"hosted-engine --deploy --config-append=$answers\"\n"
                "printf '1\\n\\n' | hosted-engine --deploy --config-append=\"$answers\"")
DEPLOYED = ("if [ -e /etc/ovirt-hosted-engine/hosted-engine.conf ]; then echo \"hosted-engine is deployed here\"; "
            "else echo \"not deployed: /etc/ovirt-hosted-engine/hosted-engine.conf is missing\"; exit 1; fi")
BY_HAND = f"""The OS is not installed in the engine VM yet: the rest needs a person at the VM's console.
On {{host}}, as root, rerun the deployment with the answer file the previous step showed:

    hosted-engine --deploy --config-append={ANSWERS_DIR}/answers-<newest>.conf

It starts the VM from its installation media on the same storage. Install the OS through the \
console it prints, answer "(1) Continue setup - VM installation is complete", install the engine in the \
VM (yum install ovirt-engine; engine-setup) and let it finish ("Hosted Engine successfully set up").
If it fails again, clean up the storage and the host (runbook failed-install-cleanup) and start from scratch.
Confirm here once it finished."""


def steps(ctx):
    show = Ssh("answers", "Show the latest answer file on {host}", SHOW, on="{host}")
    score = Wait("wait-score", "Wait until {host} publishes a score",
                 Check("host-score", {"host": "{host}", "min_score": 1}), timeout=900)
    if ctx.params.get("vm_os") == "installed":
        ctx.note("The engine VM's OS is installed: the setup is answered (1) Continue setup - VM installation "
                 "is complete, then Enter at \"Please install the engine in the VM\".")
        # Running it again after a cut-off is this very procedure: it resumes from the newest file.
        return (show,
                Ssh("deploy", "Rerun hosted-engine --deploy with the latest answer file on {host}", RERUN,
                    on="{host}", changes=True, output_check="Hosted Engine successfully set up", timeout=3600),
                score)
    ctx.note("The engine VM's OS is not installed: a person reruns the deployment at the VM's console.")
    return (show,
            Manual("deploy-by-hand", "Rerun the deployment on {host} and install the VM's OS", BY_HAND),
            Ssh("deployed", "Check that {host} is deployed", DEPLOYED, on="{host}"),
            score)


RESUME_DEPLOY = Runbook(
    slug="resume-deploy",
    name="Resume a partial deployment",
    description="When hosted-engine --deploy broke before its end: find the latest answer file it wrote, show "
                "it, and rerun the deployment with --config-append so it continues where it stopped.",
    scope="host",
    needs_fresh_ha=False,  # the cluster being deployed has no HA data yet
    params=(Param("host", "Host", kind="host", help="The host whose deployment broke."),
            Param("vm_os", "The engine VM's OS", kind="choice", choices=("installed", "not-installed"),
                  default="installed",
                  help="installed: the OS (and the engine) is in the VM already, the setup continues on its "
                       "own; not-installed: a person reruns it at the VM's console.")),
    preflight=(Check("not-he-host", {"host": "{host}"}),),
    steps=steps,
)
