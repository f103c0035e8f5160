"""`sam local invoke` gives the function the template's environment with every `!Ref` to a resource
resolved to the resource's bare logical id (DEAD_LETTER_QUEUE_URL=DeadLetterQueue), which init rightly
refuses; `tools/sam-local-env.json` blanks those settings. This check resolves each function's
environment the way SAM CLI does (its own provider and EnvironmentVariables, from the pinned venv),
with the env file applied, and starts the function's binary with it against a Runtime API that is not
there: init must get as far as "initialised". No Docker, no network.

    python tools/check-sam-local.py WORKER_BINARY WEBHOOK_BINARY
"""

import json
import os
import socket
import subprocess
import sys

from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.local.lambdafn.env_vars import EnvironmentVariables

ENV_FILE = "tools/sam-local-env.json"
# Each function of the template, and which of the two binaries (the arguments, in this order) it runs.
FUNCTIONS = {"DisassociatorFunction": 0, "WebhookFunction": 1}


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_line(binary: str, variables: dict) -> str:
    """The function's first log line that says how init ended."""
    env = {k: str(v) for k, v in variables.items() if v is not None}
    # A port nothing listens on: the function stops at its first poll, after init.
    runtime_api = f"127.0.0.1:{closed_port()}"
    env.update(AWS_LAMBDA_RUNTIME_API=runtime_api, AWS_LAMBDA_LOG_LEVEL="INFO", PATH=os.environ.get("PATH", ""))
    try:
        run = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return f"no end of init within 60 s: {e}"
    for line in (run.stdout + run.stderr).splitlines():
        if '"initialised"' in line or '"setting"' in line:
            return line
    return (run.stdout + run.stderr)[-400:]


def main() -> int:
    binaries = sys.argv[1:3]
    if len(binaries) != 2:
        print(__doc__)
        return 2
    overrides = json.load(open(ENV_FILE))
    stacks, _ = SamLocalStackProvider.get_stacks("template.yaml")
    failed = 0
    checked = set()
    for function in SamFunctionProvider(stacks).get_all():
        checked.add(function.name)
        variables = EnvironmentVariables(
            function_name=function.name,
            function_memory=function.memory,
            function_timeout=function.timeout,
            function_handler=function.handler,
            variables=(function.environment or {}).get("Variables", {}),
            override_values=overrides.get(function.name, {}),
        ).resolve()
        if function.name not in FUNCTIONS:
            continue
        line = init_line(binaries[FUNCTIONS[function.name]], variables)
        ok = '"initialised"' in line
        failed += not ok
        print(f"sam local invoke {function.name} --env-vars {ENV_FILE}: {'init ok' if ok else 'INIT FAILS'}: {line}")
    if checked != set(FUNCTIONS):
        print(f"expected the functions {sorted(FUNCTIONS)}, SAM CLI gave {sorted(checked)}")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
