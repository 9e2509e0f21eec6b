"""Late fusion checked against independent numpy / scikit-learn computations."""

import numpy as np
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from twostream.fusion import average_fusion, fit_svm_fusion, svm_features


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def complementary_scores(rng, n_per_class=12, appearances=3, motions=4):
    """Scores of two streams on a grid of classes: one sees appearance only, the other motion only."""
    classes = [(a, m) for a in range(appearances) for m in range(motions)]
    labels = np.repeat(np.arange(len(classes)), n_per_class)
    app = np.array([classes[k][0] for k in labels])
    mot = np.array([classes[k][1] for k in labels])
    same_app = np.array([[classes[c][0] == a for c in range(len(classes))] for a in app], float)
    same_mot = np.array([[classes[c][1] == m for c in range(len(classes))] for m in mot], float)
    spatial = softmax(3 * same_app + rng.normal(0, 0.3, same_app.shape))
    temporal = softmax(3 * same_mot + rng.normal(0, 0.3, same_mot.shape))
    return labels, spatial.astype(np.float32), temporal.astype(np.float32)


def test_average_is_numpy_mean():
    rng = np.random.default_rng(0)
    a, b, c = (softmax(rng.normal(size=(7, 5))) for _ in range(3))
    np.testing.assert_allclose(average_fusion([a, b, c]), (a + b + c) / 3, rtol=1e-6)


def test_svm_fusion_equals_independent_sklearn_fit():
    rng = np.random.default_rng(1)
    labels, spatial, temporal = complementary_scores(rng)
    fused = fit_svm_fusion([spatial, temporal], labels, C_grid=[1.0], cv_folds=3, max_iter=10000, seed=0)
    features = np.hstack([normalize(spatial), normalize(temporal)])  # L2 per row, per stream
    np.testing.assert_allclose(svm_features([spatial, temporal]), features, rtol=1e-6)
    reference = LinearSVC(multi_class="crammer_singer", C=1.0, max_iter=10000, random_state=0).fit(features, labels)
    np.testing.assert_allclose(fused.decision([spatial, temporal]), reference.decision_function(features),
                               rtol=1e-6, atol=1e-8)


def test_fusion_of_complementary_streams_beats_each_stream():
    rng = np.random.default_rng(2)
    train_labels, train_s, train_t = complementary_scores(rng)
    test_labels, test_s, test_t = complementary_scores(rng)
    accuracy = {name: float((s.argmax(1) == test_labels).mean()) for name, s in
                [("spatial", test_s), ("temporal", test_t), ("average", average_fusion([test_s, test_t]))]}
    svm = fit_svm_fusion([train_s, train_t], train_labels, C_grid=[0.1, 1, 10], cv_folds=3, max_iter=10000, seed=0)
    assert svm.C in (0.1, 1, 10)
    accuracy["svm"] = float((svm.decision([test_s, test_t]).argmax(1) == test_labels).mean())
    # Each stream alone can only narrow the class down to 4 (spatial) or 3 (temporal) candidates.
    assert accuracy["spatial"] < 0.5 and accuracy["temporal"] < 0.5, accuracy
    assert accuracy["average"] > 0.8 and accuracy["svm"] > 0.8, accuracy
