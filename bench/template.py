"""The deployed stack as template.yaml declares it: the parameters' defaults, the work queue and its
dead-letter queue, the worker function and its SQS event source, and the environment Lambda gives
the worker. The scaled scenarios (bench/scaled.py) read it here so that they follow the template.

Only what the worker's environment uses is resolved: `!Ref` (a parameter, or a resource given by the
caller), `!FindInMap` and `!Sub` of parameters; anything else is refused by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import yaml

FUNCTION = "DisassociatorFunction"
WORK_QUEUE = "WorkQueue"
DEAD_LETTER_QUEUE = "DeadLetterQueue"
WRITE_SLOTS_TABLE = "WriteSlotsTable"
EVENT_SOURCE = "WorkQueue"  # the function's SQS event, by name


@dataclass(frozen=True)
class Tag:
    """A CloudFormation short form (`!Ref x`), kept as written."""

    name: str
    value: object


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Tag:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tag(suffix, value)


_Loader.add_multi_constructor("!", _tag)


# What Lambda sets in every `provided.al2023` environment, beside the function's own settings.
LAMBDA_PROVIDED = {
    "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
}


class Template:
    def __init__(self, path: str, parameters: dict[str, str] | None = None):
        """`parameters` replace the defaults of the parameters they name (as a deployment's overrides)."""
        with open(path) as f:
            self.doc = yaml.load(f, Loader=_Loader)
        self.parameters = {name: str(p.get("Default", "")) for name, p in self.doc["Parameters"].items()}
        for name, value in (parameters or {}).items():
            if name not in self.parameters:
                raise KeyError(f"template.yaml has no parameter {name}")
            self.parameters[name] = str(value)

    def resource(self, name: str) -> dict:
        return self.doc["Resources"][name]["Properties"]

    @property
    def function(self) -> dict:
        return self.resource(FUNCTION)

    @property
    def event_source(self) -> dict:
        return self.function["Events"][EVENT_SOURCE]["Properties"]

    def resolve(self, value, resources: dict[str, str]):
        """A value with its intrinsic functions resolved; `resources` gives each resource's `Ref`."""
        if not isinstance(value, Tag):
            return value
        if value.name == "Ref":
            if value.value in self.parameters:
                return self.parameters[value.value]
            if value.value in resources:
                return resources[value.value]
            raise KeyError(f"!Ref {value.value}: neither a parameter nor a resource given")
        if value.name == "FindInMap":
            mapping, first, second = (str(self.resolve(v, resources)) for v in value.value)
            return str(self.doc["Mappings"][mapping][first][second])
        if value.name == "Sub" and isinstance(value.value, str):
            text = value.value
            for name, parameter in self.parameters.items():
                text = text.replace("${" + name + "}", parameter)
            if "${" in text:
                raise KeyError(f"!Sub {value.value}: only parameters are resolved here")
            return text
        raise KeyError(f"!{value.name} is not resolved here")

    def lambda_environment(self, resources: dict[str, str]) -> dict[str, str]:
        """The worker's environment as Lambda gives it: the template's variables, resolved, and what
        Lambda adds from the function's settings (its memory, and the log format and level of its
        LoggingConfig). Lambda gives the timeout only as each invocation's deadline."""
        function = self.function
        env = {
            name: str(self.resolve(value, resources))
            for name, value in function["Environment"]["Variables"].items()
        }
        logging = function.get("LoggingConfig", {})
        env.update(LAMBDA_PROVIDED)
        env["_HANDLER"] = str(function["Handler"])
        env["AWS_LAMBDA_FUNCTION_NAME"] = str(self.resolve(function["FunctionName"], resources))
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(function["MemorySize"])
        env["AWS_LAMBDA_LOG_FORMAT"] = str(logging.get("LogFormat", "Text"))
        if "ApplicationLogLevel" in logging:
            env["AWS_LAMBDA_LOG_LEVEL"] = str(self.resolve(logging["ApplicationLogLevel"], resources))
        return env

    def summary(self) -> dict:
        """The values the event source mapping and the queues take from the template (unscaled)."""
        source = self.event_source
        work = self.resource(WORK_QUEUE)
        dead = self.resource(DEAD_LETTER_QUEUE)
        return {
            "max_receive_count": int(self.parameters["MaxReceiveCount"]),
            "maximum_concurrency": int(self.resolve(source["ScalingConfig"]["MaximumConcurrency"], {})),
            "batch_size": int(source["BatchSize"]),
            "batching_window_s": float(source.get("MaximumBatchingWindowInSeconds", 0)),
            "function_timeout_s": float(self.function["Timeout"]),
            "memory_mb": int(self.function["MemorySize"]),
            "visibility_timeout_s": float(work["VisibilityTimeout"]),
            "retention_s": float(self.resolve(work["MessageRetentionPeriod"], {})),
            "dead_letter_retention_s": float(self.resolve(dead["MessageRetentionPeriod"], {})),
            "write_quota_per_second": float(self.parameters["WriteQuotaPerSecond"]),
        }


def default_path() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "template.yaml")
