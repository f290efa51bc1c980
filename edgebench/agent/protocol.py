"""The jobs the host sends to an agent, local or remote, as typed messages, and the result format.

Each job is a frozen dataclass that writes itself as one JSON object (``to_json``) with the
protocol version and its ``kind``, and reads one back (``from_json``/:func:`parse_job`),
checking the version, the kind, every required field and every type; a malformed job is one
:class:`EdgebenchError` line (the agent answers ``{"ok": false, "error": ...}`` with it)::

    {"protocol": 1, "kind": "profile", "artifact": "model.onnx", "inputs": "inputs.npz",
     "backend": "onnxruntime", "options": {"threads": 2, "compile": false, ...},
     "batches": [1, 8], "modes": ["end_to_end", "compute"],
     "budget": {"warmup_iters": 10, "warmup_s": 0.2, "iterations": 50, "min_duration_s": 1.0,
                "max_iterations": 100000},
     "telemetry": "auto", "result": "result.json"}

Jobs: :class:`ProfileJob` (latency, memory, energy), :class:`RoundsJob` (the latency of several
models timed in interleaved rounds), :class:`PredictJob` (every
:class:`InputSet` through the artifact, predictions and logits back), :class:`EnvJob` (the
backends available there). A query session (``--serve``) opens with a :class:`SessionJob` line
and then answers :class:`Query` lines. Options are
:class:`~edgebench.backends.options.BackendOptions`, the budget a
:class:`~edgebench.backends.options.TimingBudget`.

Paths in a job are host paths until a device calls :meth:`relocated` with where each file the
job reads (:meth:`paths`) lies on the device and where it writes its outputs: the one place
host paths become device paths, for local and SSH devices alike.

A result is ``{"protocol": 1, "kind": ..., "ok": true, "environment": {...}, ...}`` or
``{"ok": false, "error": "one line"}``. Progress lines on stderr look like
``{"event": "progress", "stage": "...", "done": 3, "total": 10}``.

Standard library only, and importable on Python 3.8 (a Jetson's JetPack Python): no pydantic,
no ``X | Y`` evaluated at run time (annotations stay strings).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from edgebench.agent.telemetry.energy import IDLE_S
from edgebench.backends.options import COLD_START_ITERS, BackendOptions, TimingBudget
from edgebench.errors import EdgebenchError, unknown_keys

PROTOCOL = 1
MODES = ("end_to_end", "compute")

M = TypeVar("M", bound="Message")


# ---- the codec: dataclass <-> JSON-ready dict, type-checked against the field annotations -------


def _split_top(text: str, sep: str) -> list[str]:
    """*text* split at *sep* outside brackets (``"tuple[int, ...] | None"`` -> two parts)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


_SCALARS: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,)}


def _decode(value: Any, ann: str, where: str, owner: type) -> Any:
    """*value* (parsed JSON) as the annotation *ann* (a string) of a field of *owner*."""
    options = _split_top(ann, "|")
    if len(options) > 1:
        if value is None and "None" in options:
            return None
        for option in (o for o in options if o != "None"):
            try:
                return _decode(value, option, where, owner)
            except EdgebenchError:
                pass  # the next type may fit; none did: one line naming the whole annotation
        raise EdgebenchError(f"{where}: expected {ann}, found {_describe(value)}")
    if ann in _SCALARS:
        # bool is an int in Python, never in a job
        fits = isinstance(value, _SCALARS[ann]) and isinstance(value, bool) == (ann == "bool")
        if not fits:
            raise EdgebenchError(f"{where}: expected {ann}, found {_describe(value)}")
        return float(value) if ann == "float" else value  # an int where a float is expected: as float
    if ann.startswith("tuple[") and ann.endswith(", ...]"):
        if not isinstance(value, (list, tuple)):
            raise EdgebenchError(f"{where}: expected a list of {ann[6:-6]}, found {_describe(value)}")
        return tuple(_decode(v, ann[6:-6], f"{where}[{i}]", owner) for i, v in enumerate(value))
    cls = vars(sys.modules[owner.__module__]).get(ann)
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return _from_fields(cls, value, where)
    raise TypeError(f"{owner.__name__}: field type {ann!r} has no JSON form")  # a bug here, not in the job


def _describe(value: Any) -> str:
    """A short name for what a job holds where something else was expected."""
    name = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    text = repr(value)
    return f"{name.get(type(value), type(value).__name__)} {text if len(text) <= 40 else text[:37] + '...'}"


def _from_fields(cls: type[Any], data: Any, where: str) -> Any:
    """An instance of the dataclass *cls* from the JSON object *data*: unknown keys, missing
    required fields and wrong types are each one :class:`EdgebenchError` line naming the field."""
    if not isinstance(data, dict):
        raise EdgebenchError(f"{where}: expected an object, found {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields)
    if unknown:
        raise EdgebenchError(f"{where}: {unknown_keys(unknown, fields, 'field')}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _decode(data[name], str(f.type), f"{where}.{name}", cls)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise EdgebenchError(f"{where}: expected field '{name}' ({f.type}), found none")
    return cls(**kwargs)


def _to_plain(value: Any) -> Any:
    """JSON-ready form of a field value (dataclasses as objects, tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


# ---- the messages -------------------------------------------------------------------------------


class Message:
    """A protocol message: a frozen dataclass with a ``kind``, written with the protocol version."""

    kind: ClassVar[str] = ""
    INPUTS: ClassVar[tuple[str, ...]] = ()  # fields naming files the agent reads (a path, or input sets)

    def paths(self) -> list[str]:
        """Host files the message reads: what a device makes available before the agent starts."""
        out: list[str] = []
        for name in self.INPUTS:
            value = getattr(self, name)
            out += [value] if isinstance(value, str) else [s.path for s in value]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this message travels as."""
        return {"protocol": PROTOCOL, "kind": self.kind, **_to_plain(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls: type[M], data: Any) -> M:
        """The message in *data*, checked: protocol version, kind, fields and their types."""
        if not isinstance(data, dict):
            raise EdgebenchError(f"malformed job: expected a JSON object, found {_describe(data)}")
        body = dict(data)
        protocol, kind = body.pop("protocol", None), body.pop("kind", None)
        if protocol != PROTOCOL:
            raise EdgebenchError(
                f"malformed {cls.kind} job: expected protocol {PROTOCOL}, found {protocol!r} "
                "(host and agent are different edgebench versions)"
            )
        if kind != cls.kind:
            raise EdgebenchError(f"malformed job: expected kind {cls.kind!r}, found {kind!r}")
        return _from_fields(cls, body, f"{cls.kind} job")

    @classmethod
    def from_json(cls: type[M], text: str) -> M:
        return cls.from_dict(_loads(text))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EdgebenchError(f"malformed job: expected JSON, found a parse error ({exc})") from None


class Job(Message):
    """A job the agent runs once (``python -m edgebench.agent JOB.json``), writing ``result``."""

    result: str | None
    OUTPUTS: ClassVar[tuple[str, ...]] = ("result",)  # fields naming files the agent writes

    def outputs(self) -> dict[str, str]:
        """``{field: path}`` of the files the job writes (set ones only)."""
        return {k: getattr(self, k) for k in self.OUTPUTS if getattr(self, k)}

    def relocated(self: M, files: Mapping[str, str], outputs: Mapping[str, str]) -> M:
        """This job with each file it reads at ``files[path]`` and each output field set to
        ``outputs[field]``: the job as the agent on a device sees it."""
        return _relocate(self, files, outputs)


def _relocate(msg: Any, files: Mapping[str, str], outputs: Mapping[str, str]) -> Any:
    """*msg* with its :attr:`~Message.INPUTS` moved through *files* and *outputs* set (shared by
    jobs and sessions, so every device maps paths the same way)."""
    unknown = sorted(set(outputs) - set(getattr(msg, "OUTPUTS", ())))
    if unknown:
        raise ValueError(f"{type(msg).__name__}: no output field(s) {unknown}")
    moved: dict[str, Any] = dict(outputs)
    for name in msg.INPUTS:
        value = getattr(msg, name)
        if isinstance(value, str):
            moved[name] = files[value]
        elif isinstance(value, tuple):  # input sets
            moved[name] = tuple(dataclasses.replace(s, path=files[s.path]) for s in value)
    return dataclasses.replace(msg, **moved)


@dataclass(frozen=True)
class InputSet:
    """One named array of inputs for a predict job: ``path`` (.npz) holds it as ``key``."""

    name: str
    path: str
    key: str = "x"


@dataclass(frozen=True)
class ProfileJob(Job):
    """Latency (per batch and mode), cold start, memory and energy of *artifact* on real *inputs*."""

    kind: ClassVar[str] = "profile"
    INPUTS: ClassVar[tuple[str, ...]] = ("artifact", "inputs")

    artifact: str
    inputs: str  # .npz of real inputs (N, C, H, W) under input_key
    backend: str = "onnxruntime"
    options: BackendOptions = field(default_factory=BackendOptions)
    input_key: str = "x"
    batches: tuple[int, ...] = (1,)
    modes: tuple[str, ...] = MODES
    budget: TimingBudget = field(default_factory=TimingBudget)
    telemetry: str = "auto"  # auto | none | tegrastats | jtop | nvml | psutil
    telemetry_interval_s: float | None = None  # None: the sampler's own
    idle_s: float = IDLE_S
    cold_start_iters: int = COLD_START_ITERS
    # False: load, memory, cold start and operator profile only, each batch and mode run once for
    # its memory; latency and energy then come from a :class:`RoundsJob` over every candidate
    timed: bool = True
    result: str | None = None

    def __post_init__(self) -> None:
        _check_batches_modes("profile", self.batches, self.modes)


def _check_batches_modes(kind: str, batches: tuple[int, ...], modes: tuple[str, ...]) -> None:
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise EdgebenchError(f"{kind} job: modes expected some of {list(MODES)}, found {list(modes)}")
    if not batches or any(b < 1 for b in batches):
        raise EdgebenchError(f"{kind} job: batches expected positive sizes, found {list(batches)}")


@dataclass(frozen=True)
class RoundsEntry:
    """One model of a :class:`RoundsJob`: its name, artifact (``path``), engine and batch sizes."""

    name: str
    path: str
    backend: str = "onnxruntime"
    options: BackendOptions = field(default_factory=BackendOptions)
    batches: tuple[int, ...] = (1,)


SESSIONS = ("auto", "shared", "alternating")


@dataclass(frozen=True)
class RoundsJob(Job):
    """Latency of several models timed in interleaved rounds on the same real *inputs*.

    Round r times every entry (each batch and mode) in the order rotated by r (A B C, B C A, ...),
    each segment with its own warm-up and ``1/rounds`` of *budget*'s iterations and duration, so
    every model meets the same drift of load, clocks and temperature. ``sessions``: ``shared``
    keeps every model open in this one process, ``alternating`` opens each for its segment only
    (when the models do not fit in memory together), ``auto`` picks by free memory."""

    kind: ClassVar[str] = "profile_rounds"
    INPUTS: ClassVar[tuple[str, ...]] = ("entries", "inputs")

    entries: tuple[RoundsEntry, ...]
    inputs: str
    input_key: str = "x"
    modes: tuple[str, ...] = MODES
    budget: TimingBudget = field(default_factory=TimingBudget)
    rounds: int = 6
    sessions: str = "auto"
    telemetry: str = "auto"
    telemetry_interval_s: float | None = None
    idle_s: float = IDLE_S
    result: str | None = None

    def __post_init__(self) -> None:
        if not self.entries:
            raise EdgebenchError("profile_rounds job: expected at least one entry, found none")
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            raise EdgebenchError(f"profile_rounds job: expected distinct entry names, found {names}")
        for e in self.entries:
            _check_batches_modes("profile_rounds", e.batches, self.modes)
        if self.rounds < 1:
            raise EdgebenchError(f"profile_rounds job: rounds expected >= 1, found {self.rounds}")
        if self.sessions not in SESSIONS:
            raise EdgebenchError(
                f"profile_rounds job: sessions expected one of {list(SESSIONS)}, found {self.sessions!r}"
            )


@dataclass(frozen=True)
class PredictJob(Job):
    """Every input set through *artifact*: predictions back, logits to ``logits`` (.npz) if set."""

    kind: ClassVar[str] = "predict"
    INPUTS: ClassVar[tuple[str, ...]] = ("artifact", "sets")
    OUTPUTS: ClassVar[tuple[str, ...]] = ("result", "logits")

    artifact: str
    sets: tuple[InputSet, ...]
    backend: str = "onnxruntime"
    options: BackendOptions = field(default_factory=BackendOptions)
    batch: int = 128
    logits: str | None = None
    result: str | None = None

    def __post_init__(self) -> None:
        if not self.sets:
            raise EdgebenchError("predict job: expected at least one input set, found none")
        if self.batch < 1:
            raise EdgebenchError(f"predict job: batch expected a positive size, found {self.batch}")


@dataclass(frozen=True)
class EnvJob(Job):
    """Which backends the agent's Python can run (and why not, for the others)."""

    kind: ClassVar[str] = "env"

    result: str | None = None


@dataclass(frozen=True)
class SessionJob(Message):
    """The first line of a query session: the artifact to load once and answer queries with."""

    kind: ClassVar[str] = "session"
    INPUTS: ClassVar[tuple[str, ...]] = ("artifact",)

    artifact: str
    backend: str = "onnxruntime"
    options: BackendOptions = field(default_factory=BackendOptions)

    def relocated(self, files: Mapping[str, str]) -> SessionJob:
        """This session with its artifact at ``files[artifact]`` on the device."""
        return _relocate(self, files, {})


@dataclass(frozen=True)
class Query(Message):
    """One query in a session: a float32 C-order batch, base64-encoded, and its shape."""

    kind: ClassVar[str] = "query"

    x: str
    shape: tuple[int, ...]


JOBS: dict[str, type[Job]] = {cls.kind: cls for cls in (ProfileJob, RoundsJob, PredictJob, EnvJob)}


def parse_job(data: Any) -> Job:
    """The job in the JSON object *data* (a dict, or its text), whichever kind it is."""
    if isinstance(data, str):
        data = _loads(data)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in JOBS:
        raise EdgebenchError(f"malformed job: expected kind one of {sorted(JOBS)}, found {kind!r}")
    return JOBS[kind].from_dict(data)


def progress(stage: str, done: int, total: int, **extra: Any) -> None:
    """Emit one progress line on stderr (the host turns these into progress bars)."""
    msg = {"event": "progress", "stage": stage, "done": done, "total": total, **extra}
    sys.stderr.write(json.dumps(msg) + "\n")
    sys.stderr.flush()


def parse_progress(line: str) -> dict | None:
    """The progress event in *line*, or None if the line is something else (a log line)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) and msg.get("event") == "progress" else None
