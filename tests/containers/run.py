"""`make containers`: from nothing to a stack that answers, and back to nothing.

1. install podman, runc, debootstrap (apt-get) when missing (podman-compose comes with the lock);
2. build a Debian bookworm base with debootstrap and import it (reused when present,
   unless --fresh);
3. build the lull image (the Dockerfile's default target) and lull-dev on that base;
4. check the lull image's file list: no dev tools, no test code, not root;
5. build Redis and Prometheus images from Debian's packages on the same base;
6. bring up deploy/docker-compose.yml (with tests/containers/compose.test.yml's images):
   Redis, ingest, 2 processors, 2 senders, the fake Graph API, Prometheus; send bursts
   with `lull simulate` from the host and see one reply per burst;
7. Prometheus scrapes every service (up == 1) and has loaded the alert rules;
8. `podman kill` one processor while bursts arrive, frozen first until Redis has handed it
   entries: nothing lost, nothing twice;
9. `down`: nothing of the stack is left.
Each step prints its time; the end prints the figures docs/deployment.md quotes. Skips with one line
(exit 0) when not root or when podman cannot run here.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from tests.containers import host, image_files, image_versions, images, prometheus_check, traffic
from tests.containers.podman import CommandFailed, Podman
from tests.containers.stack import Container, Ports, Stack
from tests.containers.steps import Steps, say
from tests.lockfile.locked import direct_runtime, locked_versions, runtime_packages

STEPS = 9
FIRST_USERS = 5
FIRST_MESSAGES = 3
KILL_USERS = 40
KILL_MESSAGES = 6
# The killed processor's unacknowledged entries wait LULL_CLAIM_IDLE_MS (30 s by default)
# for the other one to claim them; then the windows close and the senders answer.
REPLY_TIMEOUT_S = 150
# How often and how long to keep the processor to be killed frozen, waiting for Redis to
# hand it entries (see freeze_holding). Its blocked read ends after 100 ms (the consumer's
# block_ms): past that a frozen processor gets nothing, so try again rather than wait.
FREEZE_TRIES = 10
FREEZE_WAIT_S = 0.5
SERVICE_COMMANDS = ("ingest", "processor", "sender", "stats", "dead", "flush")


def mb(size_bytes: int) -> str:
    """Bytes as podman shows image sizes (MB = 10^6 bytes)."""
    return f"{size_bytes / 1e6:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    """Run the steps; 0 when all passed or the test was skipped, 1 when one failed."""
    parser = argparse.ArgumentParser(prog="python -m tests.containers", description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="rebuild the base image too")
    args = parser.parse_args(argv)
    reason = host.why_not()
    if reason:
        say(f"skipped: {reason}")
        return 0
    steps = Steps(STEPS)
    venv_bin = host.venv_bin()
    with steps.step("install podman, runc, debootstrap"):
        host.install_tools(venv_bin)
    ports = Ports.pick()
    podman = Podman(venv_bin / "podman-compose", ports.compose_env())
    try:
        podman.run(["info"], 120)
    except CommandFailed as exc:
        say(f"skipped: podman cannot run here: {str(exc).splitlines()[-1]}")
        return 0
    try:
        figures = run_steps(steps, podman, ports, venv_bin, fresh=args.fresh)
    except (AssertionError, CommandFailed) as exc:
        say(f"FAILED: {exc}")
        print(steps.closing_line(), flush=True)
        return 1
    say("passed; " + "; ".join(figures))
    print(steps.closing_line(), flush=True)
    return 0


def run_steps(
    steps: Steps, podman: Podman, ports: Ports, venv_bin: Path, *, fresh: bool
) -> list[str]:
    """Steps 2-9; the figures worth quoting."""
    figures = []
    if fresh:
        images.remove_test_images(podman)
    with steps.step("build the Debian base image (debootstrap, podman import)"):
        base = images.build_base(podman, reuse=not fresh)
        say(f"{base.image}: {mb(base.size_bytes)}{' (reused)' if base.reused else ''}")
    started = time.monotonic()
    with steps.step("build the lull image and lull-dev on it"):
        lull, dev = images.build_lull(podman)
        say(f"{lull.image}: {mb(lull.size_bytes)}; {dev.image}: {mb(dev.size_bytes)}")
    figures.append(f"lull image {mb(lull.size_bytes)} on a {mb(base.size_bytes)} base")
    figures.append(f"lull + lull-dev build {time.monotonic() - started:.0f} s")
    with steps.step("check the lull image: file list, user, commands"):
        say(check_image(podman))
    with steps.step("build Redis and Prometheus from Debian's packages"):
        for built in images.build_support(podman):
            say(f"{built.image}: {mb(built.size_bytes)}")
    stack = Stack(podman, ports)
    stack.down()  # a stack left by an interrupted run
    with tempfile.TemporaryDirectory(prefix="lull-containers-") as work:
        try:
            figures += run_stack(steps, stack, venv_bin, Path(work))
        except (AssertionError, CommandFailed):
            say("the stack's last log lines:\n" + stack.logs_tail())
            raise
        finally:
            with steps.step("down, and nothing left"):
                stack.down()
                left = stack.leftovers()
                assert not left, f"left after down: {left}"
                say("no container, volume or network of the stack is left")
    podman.run(["image", "prune", "--force"], 300)  # the build stages' dangling layers
    return figures


def check_image(podman: Podman) -> str:
    """The production image holds no dev or test code, runs as non-root, runs each command."""
    paths = image_files.image_files(podman, images.LULL)
    found = image_files.problems(paths)
    assert not found, "the lull image holds:\n" + "\n".join(found[:40])
    installed = image_versions.installed_versions(paths)
    differ = image_versions.mismatches(
        installed, locked_versions(), runtime_packages(), direct_runtime()
    )
    assert not differ, "the lull image differs from uv.lock:\n" + "\n".join(differ)
    user = podman.run(["image", "inspect", "--format", "{{.Config.User}}", images.LULL], 30)
    assert user.strip().split(":")[0] not in ("", "root", "0"), user
    for command in SERVICE_COMMANDS:
        podman.run(["run", "--rm", images.LULL, command, "--help"], 120)
    return (
        f"{len(paths)} paths, none dev-only or test code; {len(installed)} distributions, "
        f"each at its uv.lock version; user {user.strip()}; "
        f"`lull {{{','.join(SERVICE_COMMANDS)}}} --help` run"
    )


def run_stack(steps: Steps, stack: Stack, venv_bin: Path, work: Path) -> list[str]:
    """Steps 6-8 on a stack that step 9 takes down whatever happens."""
    figures = []
    with steps.step("up; bursts from the host; one reply per burst"):
        up_at = time.monotonic()
        stack.up()
        say(f"podman-compose up -d returned after {time.monotonic() - up_at:.1f} s")
        stack.wait_ready()
        ready_s = time.monotonic() - up_at
        record = work / "first.jsonl"
        summary = traffic.finish(
            traffic.simulate(
                venv_bin,
                stack,
                users=FIRST_USERS,
                messages=FIRST_MESSAGES,
                prefix="71",
                record=record,
            )
        )
        say(f"lull simulate: {summary}")
        sent = traffic.bursts(record)
        first_at = traffic.wait_for_replies(stack, sent, REPLY_TIMEOUT_S)
        verdict = traffic.judge(sent, traffic.replies(stack))
        say(verdict.line())
        # No replica died: every burst is one window, so one reply.
        assert verdict.ok and not verdict.split, verdict
        timing = (
            f"up -> every service ready {ready_s:.1f} s, up -> first reply {first_at - up_at:.1f} s"
        )
        say(timing)
        figures.append(timing)
    with steps.step("Prometheus scrapes every service and loads the alert rules"):
        say("up == 1: " + prometheus_check.every_target_up(stack))
        prometheus_check.lull_metrics_scraped(stack, verdict.messages)
        say(f"alert rules loaded: {', '.join(prometheus_check.rules_loaded(stack))}")
    with steps.step("podman kill one processor mid-burst; nothing lost"):
        figures.append(kill_processor(stack, venv_bin, work))
    return figures


def kill_processor(stack: Stack, venv_bin: Path, work: Path) -> str:
    """SIGKILL a processor holding entries once a third of a run is stored; judge replies."""
    victim, survivor = stack.of("processor")
    record = work / "kill.jsonl"
    stored_before = stack.inbound_added()
    planned = KILL_USERS * KILL_MESSAGES
    run = traffic.simulate(
        venv_bin, stack, users=KILL_USERS, messages=KILL_MESSAGES, prefix="72", record=record
    )
    try:
        while stack.inbound_added() < stored_before + planned // 3:
            assert run.poll() is None, "simulate ended before the kill"
            time.sleep(0.1)
        held = freeze_holding(stack, victim, run)
        stack.podman.run(["kill", victim.name], 60)
        stored_at_kill = stack.inbound_added() - stored_before
    finally:
        summary = traffic.finish(run)
    say(
        f"killed {victim.name} (SIGKILL) after {stored_at_kill}/{planned} messages were "
        f"stored, holding {held} delivered and unacknowledged; {survivor.name} carries on"
    )
    say(f"lull simulate: {summary}")
    sent = traffic.bursts(record)
    traffic.wait_for_replies(stack, sent, REPLY_TIMEOUT_S)
    drained = stack.wait_drained(REPLY_TIMEOUT_S)
    verdict = traffic.judge(sent, traffic.replies(stack))
    say(f"{verdict.line()}; {drained}")
    assert verdict.ok, verdict
    return f"kill: {verdict.line()}, {held} entries held by the killed processor"


def freeze_holding(stack: Stack, victim: Container, run: subprocess.Popen[bytes]) -> int:
    """Pause the victim until Redis has handed it entries it cannot process; how many.

    A processor spends nearly all its time blocked in XREADGROUP, and Redis serves a
    blocked client the next entries even while its process is frozen (until the read's
    block time has passed): so a pause turns "the crash may land between read and ack" into
    "it does". Gives up (0) when none came while bursts were arriving; the kill still tests
    the other processor's takeover of the closing."""
    for _ in range(FREEZE_TRIES):
        stack.podman.run(["pause", victim.name], 60)
        deadline = time.monotonic() + FREEZE_WAIT_S
        while time.monotonic() < deadline and run.poll() is None:
            held = stack.held_by(victim)
            if held:
                return held
            time.sleep(0.1)
        stack.podman.run(["unpause", victim.name], 60)
        if run.poll() is not None:
            break
    stack.podman.run(["pause", victim.name], 60)
    return stack.held_by(victim)
