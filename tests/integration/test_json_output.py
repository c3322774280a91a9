"""``--json``: stdout is one document the report models parse; messages go to stderr."""

from __future__ import annotations

import shutil

import pytest

from lfs_agent.reports import FsckReport, LsFilesReport, StatusReport, TransferReport
from tests.conftest import agent, git
from tests.helpers import sha256
from tests.integration.test_ci_clones import FILES, project  # noqa: F401
from tests.integration.test_plain_git import Setup, commit_all, setup  # noqa: F401

pytestmark = pytest.mark.integration


def test_push_fetch_pull_status_and_fsck_print_their_documents(setup: Setup):  # noqa: F811
    work = setup.work
    (work / "a.bin").write_bytes(b"alpha\n")
    (work / "b.bin").write_bytes(b"beta beta\n")
    commit_all(work, "two")

    st = StatusReport.model_validate_json(agent("status", "--json", cwd=work).stdout)
    assert st.branch in ("main", "master") and st.staged == [] and st.unstaged == []

    pushed = agent("push", "--json", "origin", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    report = TransferReport.model_validate_json(pushed.stdout)
    assert report.operation == "upload" and report.failed == []
    assert {o.oid for o in report.done} == {sha256(b"alpha\n"), sha256(b"beta beta\n")}
    assert report.bytes_moved == 16 and b"uploaded 2 object(s)" in pushed.stderr

    again = TransferReport.model_validate_json(agent("push", "--json", cwd=work).stdout)
    assert again.done == [] and len(again.skipped) == 2 and again.bytes_moved == 0

    shutil.rmtree(work / ".git" / "lfs" / "objects")
    (work / "a.bin").unlink()
    pulled = agent("pull", "--json", cwd=work)
    assert pulled.returncode == 0, pulled.stderr
    got = TransferReport.model_validate_json(pulled.stdout)
    assert got.operation == "download" and len(got.done) == 2 and got.checked_out == 1

    fetched = TransferReport.model_validate_json(agent("fetch", "--json", cwd=work).stdout)
    assert fetched.done == [] and len(fetched.skipped) == 2

    checked = agent("fsck", "--json", "--remote", cwd=work)
    fsck = FsckReport.model_validate_json(checked.stdout)
    assert checked.returncode == 0 and fsck.ok and fsck.checked == 2 and fsck.remote


def test_a_failed_object_is_listed_with_its_reason_and_the_exit_stays_non_zero(
    setup: Setup,  # noqa: F811
):
    work = setup.work
    (work / "a.bin").write_bytes(b"alpha\n")
    commit_all(work, "one")
    assert agent("push", cwd=work).returncode == 0
    oid = sha256(b"alpha\n")
    for path in setup.bucket.rglob(oid):
        path.unlink()
    shutil.rmtree(work / ".git" / "lfs" / "objects")
    fetched = agent("fetch", "--json", cwd=work)
    assert fetched.returncode != 0
    report = TransferReport.model_validate_json(fetched.stdout)
    assert [f.oid for f in report.failed] == [oid] and report.failed[0].reason
    assert report.done == [] and report.error and oid in report.error


def test_a_push_missing_local_objects_says_why_in_its_document(setup: Setup):  # noqa: F811
    work = setup.work
    (work / "a.bin").write_bytes(b"alpha\n")
    commit_all(work, "one")
    shutil.rmtree(work / ".git" / "lfs" / "objects")
    pushed = agent("push", "--json", cwd=work)
    assert pushed.returncode != 0
    report = TransferReport.model_validate_json(pushed.stdout)
    assert report.done == [] and report.error and "missing" in report.error

    fsck = agent("fsck", "--json", cwd=work)
    assert fsck.returncode == 1
    assert not FsckReport.model_validate_json(fsck.stdout).ok


def test_ls_files_json_says_what_is_checked_out_and_downloaded(setup: Setup):  # noqa: F811
    work = setup.work
    (work / "a.bin").write_bytes(b"alpha\n")
    commit_all(work, "one")
    (work / "a.bin").write_bytes(b"changed size\n")
    files = LsFilesReport.model_validate_json(agent("ls-files", "--json", cwd=work).stdout)
    assert files.files is not None
    [entry] = files.files
    assert (entry.name, entry.size, entry.checkout, entry.downloaded) == ("a.bin", 6, False, True)
    git("checkout", "--", "a.bin", cwd=work)
    empty = agent("ls-files", "--json", "-I", "nothing", cwd=work).stdout
    assert LsFilesReport.model_validate_json(empty).files is None


def test_clone_json_counts_what_git_and_the_pull_brought(project):  # noqa: F811
    root, server, _bucket = project
    out = agent("clone", "--json", "--include", "models/*", str(server), "ci", cwd=root)
    assert out.returncode == 0, out.stderr
    report = TransferReport.model_validate_json(out.stdout)
    models = {sha256(FILES["models/resnet.bin"]), sha256(FILES["models/bert.bin"])}
    assert {o.oid for o in report.done} == models and report.failed == []
    assert report.bytes_moved == len(FILES["models/resnet.bin"]) + len(FILES["models/bert.bin"])


def test_clone_json_lists_an_object_that_failed(project):  # noqa: F811
    root, server, bucket = project
    data = FILES["data/test.bin"]
    for path in bucket.rglob(sha256(data)):
        path.chmod(0o644)
        path.write_bytes(b"!" * len(data))
    out = agent("clone", "--json", str(server), "ci", cwd=root)
    assert out.returncode != 0
    report = TransferReport.model_validate_json(out.stdout)
    assert [f.oid for f in report.failed] == [sha256(data)] and report.error
    assert len(report.done) == len(FILES) - 1
