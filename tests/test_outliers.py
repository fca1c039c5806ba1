"""The ImageNet top-N filter: flags from a stand-in backbone whose logits the test chooses,
resume after cancel, and confident learning on features with known flipped labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.jobs import Cancelled, CancelToken, JobError, drive
from core.pets.features import FeatureCache
from core.pets.label_issues import (
    ISSUE_SCORE,
    QUALITY_SCORE,
    find_label_issues,
    out_of_fold_probabilities,
    rank_label_issues,
    too_few_labels,
)
from core.pets.labelstore import open_store
from core.pets.outliers import FlagSettings, compute_flags, scan, summarise, top_classes
from tests.outlier_data import logits_for, make_coded_dataset, stand_in

DOG, OTHER_DOG, CAT, LYNX, SIGN, WEB_SITE = 207, 250, 282, 287, 919, 916

#: code → the logits the stand-in returns for it
TABLE = {
    20: logits_for({DOG: 12.0}),  # a plain dog
    60: logits_for({SIGN: 12.0}),  # a logo: no pet anywhere near the top
    100: logits_for({WEB_SITE: 9.0, 600: 8.5, DOG: 8.0}),  # a dog third: outlier only at N < 3
    140: logits_for({CAT: 11.0, DOG: 11.0}),  # a cat and a dog together
    180: logits_for({CAT: 12.0}),  # a plain cat
    220: logits_for({LYNX: 12.0}),  # a lynx: a cat only when wild cats count
}
LAYOUT = {
    "train/dog.0.jpg": 20,
    "train/dog.1.jpg": 60,
    "train/dog.2.jpg": 100,
    "train/cat.3.jpg": 140,
    "train/dog.4.jpg": 180,  # labelled dog, looks like a cat: disagrees
    "train/cat.5.jpg": 180,
    "train/cat.6.jpg": 220,
    "test/7.jpg": 60,
    "test/8.jpg": 20,
}


def opened(root: Path):
    store, _listing = drive(open_store(root, CancelToken()), CancelToken())
    return store


def names(store, mask: np.ndarray) -> set[str]:
    return {store.paths[r].rsplit("/", 1)[-1] for r in np.flatnonzero(mask)}


def test_flags_follow_the_logits_and_n(tmp_path: Path):
    store = opened(make_coded_dataset(tmp_path / "pets", LAYOUT))
    summary = drive(scan(store, stand_in(TABLE), CancelToken(), batch_size=4), CancelToken())
    assert summary.scanned == len(LAYOUT) and summary.problems == 0
    table = store.scan_table("stand-in")
    assert table.scanned.all()
    flags = compute_flags(table, store.label, store.split, FlagSettings(top_n=5))
    assert names(store, flags.outlier) == {"dog.1.jpg", "7.jpg", "cat.6.jpg"}
    assert names(store, flags.both) == {"cat.3.jpg"}
    # the cat-and-dog image puts a little more mass on dogs (118 classes against 5 share the
    # rest), which at 40 % is a disagreement with its cat label too
    assert names(store, flags.disagrees) == {"dog.4.jpg", "cat.3.jpg"}
    # N changes the outliers without a rescan: the third-ranked dog drops below N = 2
    narrow = compute_flags(table, store.label, store.split, FlagSettings(top_n=2))
    assert names(store, narrow.outlier) == {"dog.1.jpg", "7.jpg", "cat.6.jpg", "dog.2.jpg"}
    # counting wild cats makes the lynx a cat
    wild = compute_flags(table, store.label, store.split, FlagSettings(5, count_wild_cats=True))
    assert "cat.6.jpg" not in names(store, wild.outlier)
    # the user's relabel ends the disagreement
    store.set_label([store.row_for_path("train/dog.4.jpg")], "cat")
    after = compute_flags(table, store.label, store.split, FlagSettings(top_n=5))
    assert names(store, after.disagrees) == {"cat.3.jpg"}
    row = store.row_for_path("train/dog.0.jpg")
    assert top_classes(table, row, 1)[0][0] == DOG and top_classes(table, row, 1)[0][1] > 0.9
    assert flags.not_pet[store.row_for_path("train/dog.1.jpg")] > 0.9


def test_summarise_keeps_top_k_and_masses():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(1000), size=3).astype(np.float32)
    classes, top, masses = summarise(probs, k=10)
    assert classes.shape == (3, 10) and np.all(np.diff(top, axis=1) <= 0)
    np.testing.assert_array_equal(classes[:, 0], probs.argmax(axis=1))
    np.testing.assert_allclose(masses[:, 1], probs[:, 151:269].sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(masses[:, 0], probs[:, 281:286].sum(axis=1), rtol=1e-5)


def test_a_cancelled_scan_resumes_to_the_same_results(tmp_path: Path):
    layout = {f"train/{'cat' if i % 2 else 'dog'}.{i}.jpg": (20, 60, 180)[i % 3] for i in range(12)}
    whole = opened(make_coded_dataset(tmp_path / "whole", layout))
    drive(scan(whole, stand_in(TABLE), CancelToken(), batch_size=3), CancelToken())

    store = opened(make_coded_dataset(tmp_path / "parts", layout))
    features = FeatureCache(tmp_path / "features.sqlite")
    token = CancelToken()

    def stop_midway(progress):
        if progress.done >= 6:
            token.cancel()

    with pytest.raises(Cancelled):
        drive(
            scan(store, stand_in(TABLE), token, batch_size=3, features=features), token, stop_midway
        )
    assert store.scanned("stand-in").sum() == 6
    assert len(features.ids("stand-in")) == 6
    resumed = drive(
        scan(store, stand_in(TABLE), CancelToken(), batch_size=3, features=features), CancelToken()
    )
    assert (resumed.scanned, resumed.already) == (6, 6)
    a, b = whole.scan_table("stand-in"), store.scan_table("stand-in")
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_allclose(a.probs, b.probs)
    ids, vectors = features.get("stand-in", store.ids)
    assert len(ids) == 12 and vectors.shape == (12, 6)
    assert store.scans()[0].images == 12


def test_unreadable_files_are_recorded_and_skipped(tmp_path: Path):
    root = make_coded_dataset(tmp_path / "pets", {"train/dog.0.jpg": 20, "train/cat.1.jpg": 180})
    (root / "train" / "cat.2.jpg").write_bytes(b"this is not a jpeg")
    store = opened(root)
    summary = drive(scan(store, stand_in(TABLE), CancelToken()), CancelToken())
    assert (summary.scanned, summary.problems) == (2, 1)
    row = store.row_for_path("train/cat.2.jpg")
    assert store.unreadable[row] and store.facts(row).problem_kind == "not-an-image"


def flipped_features(n: int = 600, flip: float = 0.1, seed: int = 1):
    """Two well-separated Gaussian classes in 16 dimensions, with `flip` of the labels
    swapped; returns (features, given labels, which were flipped)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    centres = rng.normal(0, 1, (2, 16)) * 2.0
    features = centres[truth] + rng.normal(0, 1.0, (n, 16))
    flipped = rng.random(n) < flip
    return features, np.where(flipped, 1 - truth, truth), flipped


def test_confident_learning_finds_flipped_labels():
    features, labels, flipped = flipped_features()
    probs = drive(out_of_fold_probabilities(features, labels, CancelToken(), 5), CancelToken())
    found = find_label_issues(probs, labels)
    precision = (found.issue & flipped).sum() / found.issue.sum()
    recall = (found.issue & flipped).sum() / flipped.sum()
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)
    ranked = found.ranked()
    assert np.all(np.diff(found.self_confidence[ranked]) >= 0)
    # the least self-confident half of the issues are nearly all real flips
    assert flipped[ranked[: len(ranked) // 2]].mean() >= 0.9
    assert found.confident_joint.sum() <= len(labels)
    # a head that learnt nothing (every probability 0.5) flags nothing
    blank = find_label_issues(np.full((len(labels), 2), 0.5), labels)
    assert not blank.issue.any()


def _embedded(tmp_path: Path):
    """A store of 80 labelled images (one in ten flipped) with embeddings cached for model
    "m": (store, cache, rows in the embeddings' order, labels, flipped)."""
    features, labels, flipped = flipped_features(n=80, flip=0.1, seed=3)
    layout = {f"train/{'cat' if y == 0 else 'dog'}.{i}.jpg": 20 for i, y in enumerate(labels)}
    store = opened(make_coded_dataset(tmp_path / "pets", layout))
    cache = FeatureCache(tmp_path / "features.sqlite")
    rows = [store.row_for_path(name) for name in layout]
    cache.put("m", store.ids[rows], features)
    return store, cache, rows, labels, flipped


def test_label_issues_are_ranked_into_the_store(tmp_path: Path):
    store, cache, rows, _labels, flipped = _embedded(tmp_path)
    store.set_excluded([rows[0]], True)  # excluded images are not ranked
    summary = drive(rank_label_issues(store, cache, "m", CancelToken()), CancelToken())
    assert summary.examined == 79
    quality, issue = store.scores(QUALITY_SCORE), store.scores(ISSUE_SCORE)
    assert np.isnan(quality[rows[0]]) and not np.isnan(quality[rows[1:]]).any()
    flagged = {i for i, r in enumerate(rows) if issue[r] == 1}
    truly = {i for i in range(1, 80) if flipped[i]}
    assert len(flagged & truly) >= 0.7 * len(truly)
    assert QUALITY_SCORE in store.score_names()


def test_too_few_labels_flag_nothing_and_clear_old_flags(tmp_path: Path):
    """14 labelled images: the scan says there are too few to judge, and an earlier
    ranking's flags go (a plain dog photo once flagged at quality 0 must not stay flagged)."""
    store, cache, rows, labels, _flipped = _embedded(tmp_path)
    drive(rank_label_issues(store, cache, "m", CancelToken()), CancelToken())
    assert np.nansum(store.scores(ISSUE_SCORE)) > 0
    cats = [r for r, y in zip(rows, labels, strict=True) if y == 0][:7]
    dogs = [r for r, y in zip(rows, labels, strict=True) if y == 1][:7]
    store.set_excluded(sorted(set(rows) - set(cats) - set(dogs)), True)
    with pytest.raises(JobError, match=r"too few labelled images .*7 cats and 7 dogs"):
        drive(rank_label_issues(store, cache, "m", CancelToken()), CancelToken())
    assert np.isnan(store.scores(ISSUE_SCORE)).all()
    assert np.isnan(store.scores(QUALITY_SCORE)).all()
    assert too_few_labels(np.array([0] * 20 + [1] * 29)) != ""  # 49 in all
    assert too_few_labels(np.array([0] * 20 + [1] * 30)) == ""
