"""A metrics sidecar per git tag: what a model version scored, and what it pins.

For each tag, a :class:`TagRecord` holds the tag, its commit, message, tagger and time,
numeric metrics (nested JSON/YAML flattened with dots), string params, and the artifacts:
every LFS file at that commit with its oid and size. Records live in the bucket at
``meta/tags/<tag>.json`` (every version also under ``meta/history/<tag>/``, so a moved tag
keeps its earlier records) and in a local copy under ``<git common dir>/lfs-agent/``;
a record that could not reach the bucket is marked pending until ``metrics push``.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lfs_agent import log
from lfs_agent.backends import Capability
from lfs_agent.errors import ConfigError, GitError, LfsAgentError, TransferError
from lfs_agent.git import Git
from lfs_agent.pointer import Pointer
from lfs_agent.redact import redact_text
from lfs_agent.scan import tree_pointers
from lfs_agent.termtext import printable, quote_path

if TYPE_CHECKING:
    from lfs_agent.backends import RecordBackend
    from lfs_agent.remote import Collector, Remote
    from lfs_agent.store import ObjectStore

__all__ = [
    "SCHEMA_VERSION",
    "Artifact",
    "LocalRecords",
    "TagRecord",
    "build_record",
    "check_name",
    "check_param_value",
    "diff_records",
    "fetch_record",
    "flatten_metrics",
    "forget_record",
    "format_number",
    "load_metrics_file",
    "load_records",
    "local_records",
    "one_record",
    "parse_pairs",
    "push_record",
    "push_record_with_objects",
    "remote_tags",
    "tag_head",
]

logger = log.get_logger(__name__)

#: Version of the record schema; readers refuse records from the future.
SCHEMA_VERSION = 1
#: Record keys in the bucket.
TAGS_PREFIX = "meta/tags/"
HISTORY_PREFIX = "meta/history/"
#: What MLflow accepts as a metric or param name: records are made to be exported there,
#: so ``tag`` refuses a name MLflow would refuse at export time.
_NAME_RE = re.compile(r"[/\w.\- :]+")
#: MLflow's limits on a name's and on a param value's length.
MAX_NAME_LENGTH = 250
MAX_PARAM_LENGTH = 6000


class Artifact(BaseModel):
    """One LFS file pinned by a tag."""

    model_config = ConfigDict(frozen=True)

    path: str
    oid: str
    size: int


class TagRecord(BaseModel):
    """The sidecar record of one tag.

    Read from a bucket someone else may write to, so held to what ``tag`` writes: a
    metric is a finite number (``NaN`` or ``1e400`` in a record is refused).
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    schema_version: int = SCHEMA_VERSION
    tag: str
    commit: str
    message: str = ""
    tagger: str = ""
    tagged_at: str = ""
    metrics: dict[str, int | float] = {}
    params: dict[str, str] = {}
    artifacts: list[Artifact] = []

    def to_json(self) -> bytes:
        """Serialize with sorted keys and a final newline."""
        return (json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> TagRecord:
        """Parse a stored record.

        Raises:
            ConfigError: when it is not a record this version understands.
        """
        try:
            record = cls.model_validate_json(data)
        except ValidationError as exc:
            raise ConfigError(
                f"{where} is not a valid tag record: {exc.errors()[0]['msg']}"
            ) from None
        if record.schema_version > SCHEMA_VERSION:
            raise ConfigError(
                f"{where} uses record schema {record.schema_version}; upgrade lfs-agent"
            )
        return record


def check_name(kind: str, name: str) -> None:
    """Refuse a metric or param name MLflow would refuse.

    MLflow takes letters, digits, spaces and ``_ - . / :``, at most 250 characters, and
    (as names may become file paths) no name that normalizes to another path.

    Args:
        kind: ``metric`` or ``param``, for the message.
        name: The name.

    Raises:
        ConfigError: one line naming the key and the fix.
    """
    if not _NAME_RE.fullmatch(name):
        problem = "may hold only letters, digits, spaces and _ - . / :"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"is longer than {MAX_NAME_LENGTH} characters"
    elif posixpath.normpath(name) != name or name == "." or name.startswith(("/", "..")):
        problem = "must be a plain relative path (no '//', './', '..' or leading '/')"
    else:
        return
    raise ConfigError(f"{kind} name {name!r} {problem}, as MLflow requires: rename it")


def check_param_value(name: str, value: str) -> None:
    """Refuse a param value longer than MLflow keeps.

    Raises:
        ConfigError: one line naming the key and the fix.
    """
    if len(value) > MAX_PARAM_LENGTH:
        raise ConfigError(
            f"param {name!r} is {len(value)} characters long, more than MLflow's "
            f"{MAX_PARAM_LENGTH}: shorten it, or keep the text in a tracked file"
        )


def flatten_metrics(data: Any, where: str, prefix: str = "") -> dict[str, int | float]:
    """Flatten nested mappings into ``{"a.b": number}``.

    Raises:
        ConfigError: for a value that is not a number (naming its key and ``where``),
            or a name MLflow would refuse (see :func:`check_name`).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of metric names to numbers")
    flat: dict[str, int | float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, where, name + "."))
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            check_name("metric", name)
            flat[name] = value
        else:
            raise ConfigError(f"{where}: metric {name!r} is not a number: {value!r}")
    return flat


def load_metrics_file(path: Path) -> dict[str, int | float]:
    """Read metrics from a JSON or YAML file.

    Raises:
        ConfigError: when the file is missing, unreadable, or holds non-numbers.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"metrics file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read metrics file {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError("YAML metrics files need PyYAML: pip install pyyaml") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"metrics file {path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"metrics file {path} is not valid JSON: {exc.msg} (line {exc.lineno})"
            ) from None
    return flatten_metrics(data, str(path))


def parse_pairs(items: Iterable[str], numeric: bool) -> dict[str, Any]:
    """Parse ``K=V`` arguments; values must be numbers when ``numeric``.

    Raises:
        ConfigError: for a missing ``=``, a non-numeric metric, or a name or param value
            MLflow would refuse.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        check_name("metric" if numeric else "param", key)
        if numeric:
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"metric {key!r} is not a number: {value!r}") from None
            if not math.isfinite(number):
                raise ConfigError(f"metric {key!r} is not a finite number: {value!r}")
            out[key] = int(number) if value.strip().lstrip("+-").isdigit() else number
        else:
            check_param_value(key, value)
            out[key] = value
    return out


def build_record(
    git: Git, tag: str, metrics: Mapping[str, float], params: Mapping[str, str]
) -> TagRecord:
    """Describe the annotated tag ``tag`` as it exists in the repository now."""
    fmt = "%(objectname)%00%(taggername) %(taggeremail)%00%(taggerdate:iso-strict)%00%(contents)"
    out = git.run(["for-each-ref", f"--format={fmt}", f"refs/tags/{tag}"]).stdout
    if not out:
        raise GitError(f"tag {tag!r} does not exist")
    _, tagger, tagged_at, message = out.decode("utf-8", "replace").split("\0", 3)
    commit = git.rev_parse(f"refs/tags/{tag}")
    if commit is None:
        raise GitError(f"tag {tag!r} does not point at a commit")
    artifacts = sorted(
        (
            Artifact(path=f.path, oid=f.pointer.oid, size=f.pointer.size)
            for f in tree_pointers(git, commit)
        ),
        key=lambda a: a.path,
    )
    return TagRecord(
        tag=tag,
        commit=commit,
        message=message.strip(),
        tagger=tagger.strip(),
        tagged_at=tagged_at.strip(),
        metrics=dict(metrics),
        params=dict(params),
        artifacts=artifacts,
    )


def _exact(value: float) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def format_number(value: float | Decimal | None) -> str:
    """Print a number as written, without binary float noise.

    ``0.06``, not ``0.06000000000000005``; ``-`` for a missing number.
    """
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _json_number(value: Decimal | float | None) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def diff_records(old: TagRecord, new: TagRecord) -> dict[str, Any]:
    """Compare two records: metrics (old, new, delta), params and artifacts changed."""
    metrics = {}
    for name in sorted(set(old.metrics) | set(new.metrics)):
        a, b = old.metrics.get(name), new.metrics.get(name)
        delta = _exact(b) - _exact(a) if a is not None and b is not None else None
        metrics[name] = {"old": a, "new": b, "delta": _json_number(delta)}
    params = {
        name: {"old": old.params.get(name), "new": new.params.get(name)}
        for name in sorted(set(old.params) | set(new.params))
        if old.params.get(name) != new.params.get(name)
    }
    before = {a.path: a for a in old.artifacts}
    after = {a.path: a for a in new.artifacts}
    artifacts = []
    for path in sorted(set(before) | set(after)):
        was, now = before.get(path), after.get(path)
        if was != now:
            artifacts.append(
                {
                    "path": path,
                    "old_oid": was.oid if was else None,
                    "new_oid": now.oid if now else None,
                    "old_size": was.size if was else None,
                    "new_size": now.size if now else None,
                }
            )
    return {
        "old": old.tag,
        "new": new.tag,
        "metrics": metrics,
        "params": params,
        "artifacts": artifacts,
    }


class LocalRecords:
    """The local copies of records, and which of them still need pushing.

    Args:
        root: ``<git common dir>/lfs-agent``.
    """

    def __init__(self, root: Path) -> None:
        self.tags_dir = root / "tags"
        self.pending_dir = root / "pending"

    def _path(self, base: Path, tag: str) -> Path:
        return base / f"{tag}.json"

    def save(self, record: TagRecord, pending: bool) -> None:
        """Write the local copy; mark it pending when the bucket did not get it."""
        path = self._path(self.tags_dir, record.tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(record.to_json())
        marker = self._path(self.pending_dir, record.tag)
        if pending:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_bytes(b"")
        else:
            marker.unlink(missing_ok=True)

    def load(self, tag: str) -> TagRecord | None:
        """The local copy of ``tag``'s record, or None.

        Raises:
            ConfigError: when the copy cannot be read or is not a valid record.
        """
        path = self._path(self.tags_dir, tag)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        return TagRecord.from_json(data, str(path))

    def forget(self, tag: str) -> bool:
        """Remove the local copy of ``tag``'s record; return whether there was one."""
        self._path(self.pending_dir, tag).unlink(missing_ok=True)
        path = self._path(self.tags_dir, tag)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def tags(self) -> list[str]:
        """Tags with a local copy."""
        if not self.tags_dir.is_dir():
            return []
        return sorted(str(p.relative_to(self.tags_dir))[:-5] for p in self.tags_dir.rglob("*.json"))

    def pending(self) -> list[str]:
        """Tags whose records have not reached the bucket."""
        if not self.pending_dir.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.pending_dir))[:-5] for p in self.pending_dir.rglob("*.json")
        )


def push_record(backend: RecordBackend, record: TagRecord, stamp: str) -> None:
    """Store ``record`` in the bucket, and a copy under the tag's history."""
    data = record.to_json()
    backend.put_meta(f"{HISTORY_PREFIX}{record.tag}/{stamp}-{record.commit[:12]}.json", data)
    backend.put_meta(f"{TAGS_PREFIX}{record.tag}.json", data)


def fetch_record(backend: RecordBackend, tag: str) -> TagRecord | None:
    """The bucket's record of ``tag``, or None."""
    key = f"{TAGS_PREFIX}{tag}.json"
    data = backend.get_meta(key)
    return TagRecord.from_json(data, key) if data is not None else None


def forget_record(collector: Collector, tag: str) -> int:
    """Delete ``tag``'s record and its earlier versions from the bucket; return how many."""
    base = f"{HISTORY_PREFIX}{tag}/"
    # Only this tag's versions: not those of a tag named ``<tag>/more``.
    entries = [e for e in collector.list_entries(base) if "/" not in e.key[len(base) :]]
    current = collector.stat_entry(f"{TAGS_PREFIX}{tag}.json")
    if current is not None:
        entries.append(current)
    return sum(
        len(collector.delete_entries(entries[start : start + 1000]))
        for start in range(0, len(entries), 1000)
    )


def remote_tags(backend: RecordBackend) -> list[str]:
    """Tags with a record in the bucket."""
    return [k[len(TAGS_PREFIX) : -5] for k in backend.list_meta(TAGS_PREFIX) if k.endswith(".json")]


def _shown(text: str) -> str:
    """``text`` as a message may hold it: credentials masked, control characters escaped."""
    return printable(redact_text(text))


def local_records(git: Git) -> LocalRecords:
    """The local copies of ``git``'s records, shared by all its work trees."""
    return LocalRecords(git.paths.common_dir / "lfs-agent")


def tag_head(
    git: Git,
    name: str,
    *,
    message: str | None,
    force: bool,
    metrics_files: Sequence[Path],
    metric_pairs: Sequence[str],
    param_pairs: Sequence[str],
) -> TagRecord:
    """Put the annotated tag ``name`` at HEAD and describe it in a record.

    The name and HEAD are checked, and the metrics read, before the tag is written, so
    a mistake leaves the repository as it was.

    Args:
        git: The repository.
        name: The tag's name.
        message: The tag's message; None: its name.
        force: Move an existing tag (its earlier records stay in the bucket's history).
        metrics_files: JSON or YAML files of (nested) numbers, later ones winning.
        metric_pairs: ``K=V`` numbers, over the files' values.
        param_pairs: ``K=V`` strings.

    Returns:
        The tag's record (not yet stored anywhere).

    Raises:
        ConfigError: a bad name, an existing tag without ``force``, a bad metric.
        GitError: no commit to tag.
    """
    if git.run(["check-ref-format", f"refs/tags/{name}"], check=False).returncode:
        raise ConfigError(f"{name!r} is not a valid tag name")
    if git.rev_parse("HEAD") is None:
        raise GitError("nothing to tag: this repository has no commits yet")
    exists = git.run(["rev-parse", "-q", "--verify", f"refs/tags/{name}"], check=False)
    if exists.returncode == 0 and not force:
        raise ConfigError(
            f"tag {name!r} already exists: use --force to move it (its earlier records are kept)"
        )
    metrics: dict[str, int | float] = {}
    for path in metrics_files:
        metrics.update(load_metrics_file(path))
    metrics.update(parse_pairs(metric_pairs, numeric=True))
    params = parse_pairs(param_pairs, numeric=False)
    git.run(["tag", "-a", *(["-f"] if force else []), "-m", message or name, name, "HEAD"])
    return build_record(git, name, metrics, params)


def push_record_with_objects(
    store: ObjectStore, remote: Remote, record: TagRecord, stamp: str | None = None
) -> None:
    """Make sure the bucket holds every artifact of ``record``, then store it there.

    A record that names objects the bucket lacks would pin what nobody can download.

    Args:
        store: The local store, which uploads the artifacts the bucket lacks.
        remote: The bucket.
        record: The record to store.
        stamp: Its history key's time (``%Y%m%dT%H%M%SZ``); None: now, in UTC.

    The record keeps its artifacts from garbage collection, so it takes part in the
    collector's protocol as a push does (:class:`lfs_agent.condemned.CondemnedCheck`):
    an artifact the bucket already holds may be condemned, and then the record is
    confirmed against a sweep that began meanwhile.

    Raises:
        TransferError: an artifact is neither in the store nor in the bucket, or a
            sweep of an artifact began while the record was written (run it again).
    """
    check = None
    if remote.can(Capability.COLLECT):
        from lfs_agent.condemned import CondemnedCheck

        check = CondemnedCheck(remote.records, remote.url, store.root / "lfs-agent-gc")
        check.begin()
    reused = []
    for artifact in record.artifacts:
        pointer = Pointer(artifact.oid, artifact.size)
        if artifact.size == 0:
            continue
        if remote.size_of(artifact.oid) == artifact.size:
            reused.append(artifact.oid)
            continue
        if not store.contains(pointer):
            raise TransferError(
                f"{quote_path(artifact.path)} ({artifact.oid}) is neither in the local store "
                f"nor in {_shown(remote.url)}: run 'lfs-agent fetch' or push from a clone "
                "that has it"
            )
        remote.upload(store, pointer)
    push_record(remote.records, record, stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if check is not None:
        check.confirm(check.condemned(reused))


def load_records(
    local: LocalRecords,
    remote: Remote | None,
    tags: Sequence[str] | None = None,
    invalid: dict[str, ConfigError] | None = None,
) -> dict[str, TagRecord]:
    """Records from the bucket (falling back to local copies), by tag.

    A record in the bucket, or a local copy, that is not a valid one is passed over (the
    others still count): put in ``invalid`` by tag when given (the bucket's reason
    first), else told in a warning. A bucket that cannot be read is warned of, and the
    local copies serve.

    Args:
        local: The local copies.
        remote: The bucket; None: local copies only.
        tags: The tags wanted; None: every tag the bucket or the copies know.
        invalid: Filled with the reason of each record passed over.

    Returns:
        The records found, by tag.
    """
    found: dict[str, TagRecord] = {}
    try:
        if remote is not None:
            names = tags if tags is not None else sorted(set(remote_tags(remote.records)))
            for tag in names:
                try:
                    record = fetch_record(remote.records, tag)
                except ConfigError as exc:  # this record only: damaged, or a newer schema
                    if invalid is None:
                        logger.warning("passed over the bucket's record of %s: %s", tag, exc)
                    else:
                        invalid[tag] = exc
                    continue
                if record is not None:
                    found[tag] = record
    except LfsAgentError as exc:
        logger.warning(
            "cannot read records from %s (%s); using local copies",
            _shown(remote.url) if remote else None,
            exc,
        )
    for tag in tags if tags is not None else local.tags():
        if tag in found:
            continue
        try:
            record = local.load(tag)
        except ConfigError as exc:  # this copy only: damaged or unreadable
            if invalid is None:
                logger.warning("passed over the local copy of %s's record: %s", tag, exc)
            else:
                invalid.setdefault(tag, exc)
            continue
        if record is not None:
            found[tag] = record
    return found


def one_record(local: LocalRecords, remote: Remote | None, tag: str) -> TagRecord:
    """The record of ``tag``: the bucket's, else (with a warning) the local copy.

    Raises:
        ConfigError: no valid record of ``tag`` anywhere.
    """
    invalid: dict[str, ConfigError] = {}
    record = load_records(local, remote, [tag], invalid).get(tag)
    if tag in invalid:
        if record is None:
            raise invalid[tag]
        logger.warning("using the local copy of %s's record: %s", tag, invalid[tag])
    if record is None:
        raise ConfigError(f"no metrics record for tag {tag!r} (locally or in the bucket)")
    return record
