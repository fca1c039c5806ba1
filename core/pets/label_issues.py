"""Images whose label looks wrong, by confident learning (Northcutt et al., 2021).

Out-of-fold probabilities come from a logistic-regression head trained k times on the cached
backbone embeddings, each time predicting the fold it did not see. Each class gets a
confidence threshold, the mean predicted probability of that class over the images labelled
with it; an image is counted in the confident joint under the most probable class that
reaches its threshold. The joint, calibrated so that each row sums to the number of images
with that label, estimates how many labels are wrong (its off-diagonal mass); that many
images, the least self-confident first (the predicted probability of the given label), are
the issues. On real photos with 5 % of the labels flipped this finds 96–97 % of them at
93–96 % precision (benchmarks/pets_models.py), where counting only the off-diagonal entries
of the uncalibrated joint missed one flip in seven.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.jobs import CancelToken, JobError, Progress
from core.pets.features import FeatureCache
from core.pets.labelstore import LabelStore

#: Score names written to the label store (the grid sorts by them).
QUALITY_SCORE = "label_quality"  # self-confidence: low = suspicious
ISSUE_SCORE = "label_issue"  # 1 for the images confident learning flags, else 0
DEFAULT_FOLDS = 5
#: The head's inverse regularisation strength on standardised embeddings. Strong
#: regularisation keeps out-of-fold probabilities from being overconfident on the
#: embeddings' 1,280 dimensions; measured on real photos (docs/benchmarks.md).
HEAD_C = 0.003
#: Below these counts the flags are mostly wrong, so none are raised. On the real sample
#: photos with one label in twenty flipped (benchmarks/label_issue_minimum.py), 10 images a
#: class gave 43 % precision and flagged a correct label on a clean set 4 times in 10; 20 a
#: class gave 75 % precision and a false alarm once in 20 sets.
MIN_PER_CLASS = 20
MIN_LABELLED = 50


@dataclass(frozen=True)
class LabelIssues:
    self_confidence: np.ndarray  # (n,) predicted probability of the given label
    issue: np.ndarray  # (n,) bool
    thresholds: np.ndarray  # (classes,)
    confident_joint: np.ndarray  # (classes, classes): given label × confident class

    def ranked(self) -> np.ndarray:
        """Indices of the issues, least self-confident first."""
        found = np.flatnonzero(self.issue)
        return found[np.argsort(self.self_confidence[found], kind="stable")]


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    token: CancelToken,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> Iterator[Progress]:
    """Job: out-of-fold class probabilities (n, classes) of a standardised
    logistic-regression head, from stratified k-fold training. Labels are 0..classes-1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = np.unique(labels)
    smallest = min(int(np.sum(labels == c)) for c in classes) if len(classes) else 0
    if len(classes) < 2 or smallest < 2:
        raise JobError(
            "Ranking label issues needs at least two cats and two dogs; found "
            f"{int(np.sum(labels == 0)):,} cat(s) and {int(np.sum(labels == 1)):,} dog(s)."
        )
    folds = max(2, min(folds, smallest))
    probs = np.zeros((len(labels), int(labels.max()) + 1))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fold, (train, held_out) in enumerate(splitter.split(features, labels)):
        token.raise_if_cancelled()
        yield Progress(fold, folds, f"Label issues: training fold {fold + 1} of {folds}")
        head = make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, max_iter=500))
        head.fit(features[train], labels[train])
        probs[np.ix_(held_out, head.classes_)] = head.predict_proba(features[held_out])
    yield Progress(folds, folds, "Label issues: out-of-fold probabilities ready")
    return probs


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> LabelIssues:
    """Confident learning over out-of-fold `probs` (n, classes) and given `labels`."""
    n, k = probs.shape
    thresholds = np.array(
        [probs[labels == j, j].mean() if np.any(labels == j) else 1.0 for j in range(k)]
    )
    above = probs >= thresholds  # (n, k)
    masked = np.where(above, probs, -np.inf)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    joint = np.zeros((k, k), dtype=np.int64)
    has = confident >= 0
    np.add.at(joint, (labels[has], confident[has]), 1)
    self_confidence = probs[np.arange(n), labels]
    given = np.bincount(labels, minlength=k).astype(float)
    rows = joint.sum(axis=1, keepdims=True)
    calibrated = np.divide(joint * given[:, None], rows, out=np.zeros((k, k)), where=rows > 0)
    count = round(calibrated.sum() - np.trace(calibrated))
    # another class must be strictly more probable than the given one: a tie (a head that
    # learnt nothing gives every image 0.5) is no evidence against the label
    best_other = np.where(np.eye(k, dtype=bool)[labels], -np.inf, probs).max(axis=1)
    candidates = np.flatnonzero(best_other > self_confidence)
    chosen = candidates[np.argsort(self_confidence[candidates], kind="stable")[:count]]
    issue = np.zeros(n, dtype=bool)
    issue[chosen] = True
    return LabelIssues(self_confidence, issue, thresholds, joint)


@dataclass(frozen=True)
class RankingSummary:
    examined: int
    issues: int
    folds: int

    def describe(self) -> str:
        return (
            f"{self.issues:,} of {self.examined:,} labelled images look mislabelled "
            f"({self.folds}-fold confident learning)"
        )


def too_few_labels(labels: np.ndarray) -> str:
    """Why `labels` (0 cat, 1 dog) are too few to judge, or '' when they are enough."""
    cats, dogs = int(np.sum(labels == 0)), int(np.sum(labels == 1))
    if min(cats, dogs) >= MIN_PER_CLASS and cats + dogs >= MIN_LABELLED:
        return ""
    return (
        f"too few labelled images to judge which labels are wrong ({cats:,} cats and "
        f"{dogs:,} dogs scanned; at least {MIN_PER_CLASS} of each and {MIN_LABELLED} in all are "
        "needed, below which most flags would be wrong), so none is flagged"
    )


def rank_label_issues(
    store: LabelStore,
    features: FeatureCache,
    model: str,
    token: CancelToken,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> Iterator[Progress]:
    """Job: rank the store's labelled train images (effective labels, exclusions left out)
    that have `model` embeddings; writes the label_quality and label_issue scores and
    returns a RankingSummary."""
    rows = store.effective_rows()
    ids, vectors = features.get(model, store.ids[rows])
    if len(ids) == 0:
        raise JobError("No embeddings to rank label issues with: scan the train images first.")
    rows = np.array([store.row_of[int(s)] for s in ids])
    labels = (store.label[rows] - 1).astype(np.int64)  # cat 0, dog 1
    previous = np.flatnonzero(~np.isnan(store.scores(ISSUE_SCORE)))
    problem = too_few_labels(labels)
    if problem:
        store.clear_scores((QUALITY_SCORE, ISSUE_SCORE), previous)  # no stale flags either
        raise JobError(problem)
    probs = yield from out_of_fold_probabilities(vectors, labels, token, folds, seed)
    found = find_label_issues(probs, labels)
    stale = np.setdiff1d(previous, rows)  # ranked before, excluded or relabelled away since
    store.clear_scores((QUALITY_SCORE, ISSUE_SCORE), stale)
    store.set_scores(QUALITY_SCORE, rows, found.self_confidence)
    store.set_scores(ISSUE_SCORE, rows, found.issue.astype(float))
    smallest = min(int(np.sum(labels == c)) for c in (0, 1))
    return RankingSummary(len(rows), int(found.issue.sum()), max(2, min(folds, smallest)))
