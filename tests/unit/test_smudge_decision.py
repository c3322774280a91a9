"""The smudge decision table, row by row, and what holds over every combination of inputs."""

from __future__ import annotations

import itertools

import pytest

from lfs_agent.pointer import Pointer
from lfs_agent.smudge_decision import (
    Delay,
    ObjectState,
    SmudgeAction,
    SmudgeRules,
    decide_smudge,
)
from tests.helpers import sha256

A = Pointer(sha256(b"a"), 100)
EMPTY = Pointer(sha256(b""), 0)

UNKNOWN, PRESENT, MISSING, FAILED = (
    ObjectState.UNKNOWN,
    ObjectState.PRESENT,
    ObjectState.MISSING,
    ObjectState.FAILED,
)
NO, ALLOWED, FOLLOW_UP = Delay.NO, Delay.ALLOWED, Delay.FOLLOW_UP
DEFAULT = SmudgeRules()
SKIP = SmudgeRules(skip=True)
KEEP = SmudgeRules(keep_failures=True)
NO_REMOTE = SmudgeRules(has_remote=False)
NO_REMOTE_KEEP = SmudgeRules(has_remote=False, keep_failures=True)


@pytest.mark.parametrize(
    ("pointer", "rules", "state", "excluded", "delay", "action"),
    [
        # 1. Not a pointer: whatever else holds.
        (None, DEFAULT, UNKNOWN, False, NO, SmudgeAction.PASS_THROUGH),
        (None, SKIP, MISSING, True, ALLOWED, SmudgeAction.PASS_THROUGH),
        # 2. Skip-smudge leaves every pointer, the empty one included, stored or not.
        (A, SKIP, UNKNOWN, False, NO, SmudgeAction.LEAVE_POINTER),
        (A, SKIP, PRESENT, False, ALLOWED, SmudgeAction.LEAVE_POINTER),
        (EMPTY, SKIP, UNKNOWN, False, NO, SmudgeAction.LEAVE_POINTER),
        (EMPTY, DEFAULT, UNKNOWN, False, NO, SmudgeAction.EMPTY),
        (EMPTY, NO_REMOTE, MISSING, True, NO, SmudgeAction.EMPTY),
        # 3. Over the size a following pull writes: the pointer, even when stored.
        (A, SmudgeRules(leave_larger_than=99), PRESENT, False, NO, SmudgeAction.LEAVE_POINTER),
        (A, SmudgeRules(leave_larger_than=99), UNKNOWN, False, NO, SmudgeAction.LEAVE_POINTER),
        (A, SmudgeRules(leave_larger_than=100), UNKNOWN, False, NO, SmudgeAction.LOOK_UP),
        (A, SmudgeRules(leave_larger_than=100), PRESENT, False, NO, SmudgeAction.SEND),
        # 4. Not looked up: look. Present: send, whatever the patterns or the remote.
        (A, DEFAULT, UNKNOWN, False, ALLOWED, SmudgeAction.LOOK_UP),
        (A, NO_REMOTE, UNKNOWN, True, NO, SmudgeAction.LOOK_UP),
        (A, DEFAULT, PRESENT, False, NO, SmudgeAction.SEND),
        (A, NO_REMOTE, PRESENT, True, ALLOWED, SmudgeAction.SEND),
        (A, DEFAULT, PRESENT, False, FOLLOW_UP, SmudgeAction.SEND),
        # 5. Missing: excluded paths keep the pointer; else download, delayed when allowed.
        (A, DEFAULT, MISSING, True, ALLOWED, SmudgeAction.EXCLUDED),
        (A, NO_REMOTE, MISSING, True, NO, SmudgeAction.EXCLUDED),
        (A, DEFAULT, MISSING, False, NO, SmudgeAction.DOWNLOAD),
        (A, DEFAULT, MISSING, False, ALLOWED, SmudgeAction.DELAY),
        (A, DEFAULT, MISSING, False, FOLLOW_UP, SmudgeAction.DOWNLOAD),
        (A, KEEP, MISSING, False, ALLOWED, SmudgeAction.DELAY),
        # ... and without a remote, a failure now, never delayed.
        (A, NO_REMOTE, MISSING, False, NO, SmudgeAction.FAIL),
        (A, NO_REMOTE, MISSING, False, ALLOWED, SmudgeAction.FAIL),
        (A, NO_REMOTE_KEEP, MISSING, False, NO, SmudgeAction.KEEP_FAILED),
        (A, NO_REMOTE_KEEP, MISSING, False, ALLOWED, SmudgeAction.KEEP_FAILED),
        # 6. Failed: delayed when git allows it, even when failures are kept.
        (A, DEFAULT, FAILED, False, ALLOWED, SmudgeAction.DELAY_FAILED),
        (A, KEEP, FAILED, False, ALLOWED, SmudgeAction.DELAY_FAILED),
        (A, KEEP, FAILED, False, NO, SmudgeAction.KEEP_FAILED),
        (A, KEEP, FAILED, False, FOLLOW_UP, SmudgeAction.KEEP_FAILED),
        (A, DEFAULT, FAILED, False, FOLLOW_UP, SmudgeAction.REPORT_FAILED),
        (A, DEFAULT, FAILED, False, NO, SmudgeAction.FAIL),
    ],
)
def test_each_row_of_the_table(pointer, rules, state, excluded, delay, action):
    assert decide_smudge(pointer, rules, state, excluded=excluded, delay=delay) is action


def every_case():
    """Every combination of the inputs the table reads."""
    rules = [
        SmudgeRules(skip, keep, remote, limit)
        for skip, keep, remote, limit in itertools.product(
            (False, True), (False, True), (False, True), (None, 99, 100)
        )
    ]
    return itertools.product((None, A, EMPTY), rules, ObjectState, (False, True), Delay)


def test_over_every_combination_each_answer_has_its_reason():
    seen = set()
    for pointer, rules, state, excluded, delay in every_case():
        action = decide_smudge(pointer, rules, state, excluded=excluded, delay=delay)
        seen.add(action)
        case = (pointer, rules, state, excluded, delay, action)
        # The blob decides first, then skip-smudge; an empty object costs nothing.
        assert (action is SmudgeAction.PASS_THROUGH) == (pointer is None), case
        if pointer is None:
            continue
        if rules.skip:
            assert action is SmudgeAction.LEAVE_POINTER, case
            continue
        assert (action is SmudgeAction.EMPTY) == (pointer.size == 0), case
        # The store is looked at only when the answer depends on it.
        assert (action is SmudgeAction.LOOK_UP) == (
            state is UNKNOWN
            and pointer.size > 0
            and (rules.leave_larger_than is None or pointer.size <= rules.leave_larger_than)
        ), case
        # Bytes go out only for an object at hand; a download only with a remote, for
        # a path the patterns let through, for an object not tried yet.
        assert action is not SmudgeAction.SEND or state is PRESENT, case
        if action in (SmudgeAction.DOWNLOAD, SmudgeAction.DELAY):
            assert rules.has_remote and not excluded and state is MISSING, case
        assert action is not SmudgeAction.EXCLUDED or excluded, case
        # git is told "delayed" only when it allowed it.
        if action in (SmudgeAction.DELAY, SmudgeAction.DELAY_FAILED):
            assert delay is ALLOWED, case
        # A failure keeps the pointer only when asked to; reported only after a delay.
        if action is SmudgeAction.KEEP_FAILED:
            assert rules.keep_failures, case
        if action is SmudgeAction.REPORT_FAILED:
            assert delay is FOLLOW_UP and not rules.keep_failures, case
        if action is SmudgeAction.FAIL:
            assert not rules.keep_failures, case
            assert state is FAILED or not rules.has_remote, case
            assert state is MISSING or delay is NO, case
    assert seen == set(SmudgeAction)  # every answer is reachable
