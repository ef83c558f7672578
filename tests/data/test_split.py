"""Pure split planning: the rounding rule, fraction checks, stratification, seeding and leakage rules."""
from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clfkit.data.split import SPLITS, FileRecord, plan_split, split_counts, validate_fractions
from clfkit.errors import ClfError, ConfigError


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def records_for(sizes: dict[str, int]) -> list[FileRecord]:
    """Distinct-content records: class → n files named img_000.jpg ..."""
    return [FileRecord(name, f"img_{i:03d}.jpg", sha(f"{name}/{i}")) for name, n in sizes.items() for i in range(n)]


def counts_by_class(plan: dict[tuple[str, str], str]) -> dict[str, tuple[int, int, int]]:
    tally: dict[str, Counter] = defaultdict(Counter)
    for (name, _), split in plan.items():
        tally[name][split] += 1
    return {name: tuple(c[s] for s in SPLITS) for name, c in tally.items()}


# --- the rounding rule ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("val, test, expected", [
    (0.15, 0.15, {0: (0, 0, 0), 1: (1, 0, 0), 2: (2, 0, 0), 3: (1, 1, 1), 4: (2, 1, 1), 10: (6, 2, 2),
                  21: (15, 3, 3), 29: (21, 4, 4), 100: (70, 15, 15)}),
    (0.0, 0.2, {1: (1, 0, 0), 2: (2, 0, 0), 3: (2, 0, 1), 4: (3, 0, 1), 10: (8, 0, 2), 21: (17, 0, 4),
                29: (23, 0, 6)}),
    (0.5, 0.3, {1: (1, 0, 0), 2: (1, 1, 0), 3: (1, 1, 1), 4: (1, 2, 1), 10: (2, 5, 3), 21: (4, 11, 6),
                29: (5, 15, 9)}),
    (0.0, 0.0, {1: (1, 0, 0), 3: (3, 0, 0), 29: (29, 0, 0)}),
    (0.1, 0.1, {5: (3, 1, 1), 15: (11, 2, 2)}),  # 0.5 and 1.5 round half *up*, not to even
    (0.3, 0.3, {2: (1, 1, 0)}),  # a tie gives back from test first
])
def test_split_counts_rounding_rule(val, test, expected):
    for n, counts in expected.items():
        assert split_counts(n, val, test) == counts, f"n={n}"
        assert sum(counts) == n


def test_split_counts_always_keeps_a_training_image():
    for n in range(1, 80):
        for val, test in [(0.15, 0.15), (0.49, 0.49), (0.9, 0.0), (0.0, 0.95), (0.01, 0.01)]:
            train, n_val, n_test = split_counts(n, val, test)
            assert train >= 1 and n_val >= 0 and n_test >= 0 and train + n_val + n_test == n
            if n >= 3:
                assert n_val >= (1 if val > 0 else 0) and n_test >= (1 if test > 0 else 0)


# --- fraction checks -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("val, test, flag", [
    (1.5, 0.1, "--val"), (-0.1, 0.1, "--val"), (1.0, 0.0, "--val"), (math.nan, 0.1, "--val"),
    (0.1, 1.5, "--test"), (0.1, -0.2, "--test"), (0.1, math.nan, "--test"), (0.0, 1.0, "--test"),
    (0.5, 0.5, "--val + --test"), (0.7, 0.4, "--val + --test"),
])
def test_validate_fractions_names_the_flag(val, test, flag):
    with pytest.raises(ConfigError) as info:
        validate_fractions(val, test)
    assert flag in str(info.value)
    assert isinstance(info.value, ClfError)
    with pytest.raises(ConfigError, match=flag.replace("+", r"\+")):
        split_counts(10, val, test)
    with pytest.raises(ConfigError, match=flag.replace("+", r"\+")):
        plan_split(records_for({"a": 5}), val, test, seed=0)


@pytest.mark.parametrize("val, test", [(0.0, 0.0), (0.15, 0.15), (0.49, 0.5), (0.0, 0.99)])
def test_validate_fractions_accepts_valid_values(val, test):
    validate_fractions(val, test)


# --- plan_split ----------------------------------------------------------------------------------------------

SIZES = {"buoy": 10, "kayak": 21, "paper_boat": 3, "raft": 1, "canoe": 2, "sailboat": 29}


def test_every_record_is_assigned_to_a_known_split():
    records = records_for(SIZES)
    plan = plan_split(records, 0.15, 0.15, seed=0)
    assert set(plan) == {(r.class_name, r.relpath) for r in records}
    assert set(plan.values()) <= set(SPLITS)


@pytest.mark.parametrize("val, test", [(0.15, 0.15), (0.0, 0.2), (0.5, 0.3)])
def test_plan_is_stratified(val, test):
    plan = plan_split(records_for(SIZES), val, test, seed=0)
    counts = counts_by_class(plan)
    for name, n in SIZES.items():
        assert counts[name] == split_counts(n, val, test), name


def test_plan_does_not_depend_on_input_order():
    records = records_for(SIZES)
    plan = plan_split(records, 0.15, 0.15, seed=5)
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    assert plan_split(shuffled, 0.15, 0.15, seed=5) == plan
    assert plan_split(list(reversed(records)), 0.15, 0.15, seed=5) == plan


def test_plan_is_reproducible_and_the_seed_matters():
    records = records_for(SIZES)
    first = plan_split(records, 0.15, 0.15, seed=0)
    assert plan_split(records, 0.15, 0.15, seed=0) == first
    other = plan_split(records, 0.15, 0.15, seed=1)
    assert other != first
    assert counts_by_class(other) == counts_by_class(first)  # same sizes, different members


def test_one_class_changing_does_not_reshuffle_the_others():
    records = records_for(SIZES)
    before = plan_split(records, 0.15, 0.15, seed=0)
    more = records + [FileRecord("kayak", "new_photo.jpg", sha("new"))]
    after = plan_split(more, 0.15, 0.15, seed=0)
    for key, split in before.items():
        if key[0] != "kayak":
            assert after[key] == split


def test_identical_files_within_a_class_stay_together():
    records = [FileRecord("gondola", f"img_{i:02d}.jpg", sha(f"g{i // 2}")) for i in range(30)]  # 15 pairs
    records += [FileRecord("gondola", f"copy_{i}.jpg", sha("g0")) for i in range(3)]  # a unit of 5 copies
    for seed in range(10):
        plan = plan_split(records, 0.15, 0.15, seed=seed)
        by_hash = defaultdict(set)
        for rec in records:
            by_hash[rec.sha256].add(plan[(rec.class_name, rec.relpath)])
        assert all(len(splits) == 1 for splits in by_hash.values()), seed
        train, n_val, n_test = split_counts(len(records), 0.15, 0.15)
        counts = counts_by_class(plan)["gondola"]
        assert counts[1] <= n_val and counts[2] <= n_test


def test_cross_class_duplicates_are_pinned_to_train():
    records = records_for({"cruise_ship": 12, "gondola": 12})
    shared = sha("venice")
    records += [FileRecord("cruise_ship", "venice.jpg", shared), FileRecord("gondola", "venice.jpg", shared),
                FileRecord("gondola", "venice_copy.jpg", shared)]
    for seed in range(20):
        plan = plan_split(records, 0.3, 0.3, seed=seed)
        assert plan[("cruise_ship", "venice.jpg")] == "train"
        assert plan[("gondola", "venice.jpg")] == "train"
        assert plan[("gondola", "venice_copy.jpg")] == "train"
        # The rest of each class still fills val and test as the rule says.
        counts = counts_by_class(plan)
        assert counts["cruise_ship"][1:] == split_counts(13, 0.3, 0.3)[1:]
        assert counts["gondola"][1:] == split_counts(14, 0.3, 0.3)[1:]


def test_empty_input_gives_an_empty_plan():
    assert plan_split([], 0.15, 0.15, seed=0) == {}


# --- properties ----------------------------------------------------------------------------------------------

fractions = st.tuples(st.floats(0.0, 0.45), st.floats(0.0, 0.45))
class_sizes = st.lists(st.integers(1, 60), min_size=1, max_size=5)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=class_sizes, fracs=fractions, seed=st.integers(0, 2**32))
def test_property_distinct_files(sizes, fracs, seed):
    val, test = fracs
    records = records_for({f"class_{k}": n for k, n in enumerate(sizes)})
    plan = plan_split(records, val, test, seed)
    counts = counts_by_class(plan)
    for k, n in enumerate(sizes):
        train, n_val, n_test = counts[f"class_{k}"]
        assert (train, n_val, n_test) == split_counts(n, val, test)
        assert train >= 1
        if n >= 3:
            assert n_val >= (1 if val > 0 else 0)
            assert n_test >= (1 if test > 0 else 0)


@st.composite
def records_with_duplicates(draw):
    sizes = draw(class_sizes)
    pool = draw(st.integers(1, 40))  # a small pool of contents → copies within and across classes
    records = []
    for k, n in enumerate(sizes):
        for i in range(n):
            records.append(FileRecord(f"class_{k}", f"f{i:03d}.jpg", sha(str(draw(st.integers(0, pool))))))
    return sizes, records


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=records_with_duplicates(), fracs=fractions, seed=st.integers(0, 2**32))
def test_property_no_leakage_with_duplicates(data, fracs, seed):
    sizes, records = data
    val, test = fracs
    plan = plan_split(records, val, test, seed)
    assert len(plan) == len(records)
    splits_of_hash = defaultdict(set)
    classes_of_hash = defaultdict(set)
    for rec in records:
        splits_of_hash[rec.sha256].add(plan[(rec.class_name, rec.relpath)])
        classes_of_hash[rec.sha256].add(rec.class_name)
    for h, splits in splits_of_hash.items():
        assert len(splits) == 1, "the same bytes landed in two splits"
        if len(classes_of_hash[h]) > 1:
            assert splits == {"train"}
    counts = counts_by_class(plan)
    for k, n in enumerate(sizes):
        train, n_val, n_test = counts[f"class_{k}"]
        _, want_val, want_test = split_counts(n, val, test)
        assert train >= 1
        assert n_val <= want_val and n_test <= want_test
