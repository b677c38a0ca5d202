"""Metrics: known answers on constructed inputs, and the alignment measure on the real shared clips."""
import numpy as np

from ha2g_model.skeleton import TED_EXPRESSIVE as S
from training import ted_culture
from training.evaluate import mirror_to
from training.metrics import (beat_consistency, diversity, frechet_distance, jerk_and_acceleration,
                              loudness_speed_correlation, velocity_histogram_distance)


def test_frechet_distance_zero_for_same_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, a + 1.0) > frechet_distance(a, a + 0.5) > 0.2
    # shifting every feature by 1 adds exactly 8 (= |mu_a - mu_b|^2)
    assert abs(frechet_distance(a, a + 1.0) - 8.0) < 1e-4


def test_diversity_is_zero_for_identical_features():
    assert diversity(np.ones((50, 4))) == 0.0
    assert diversity(np.random.default_rng(0).standard_normal((50, 4))) > 1.0


def test_clip_metrics_separate_real_from_mismatched(ted_culture_dir):
    clips = ted_culture.load_clips(ted_culture_dir)
    true_corr, mismatched_corr, vh_mean_pose, vh_mismatched = [], [], [], []
    for i, clip in enumerate(clips):
        other = mirror_to(clips[(i + 1) % len(clips)].directions, clip.n_frames)
        rest = np.broadcast_to(S.rest_directions(), clip.directions.shape)
        true_corr.append(loudness_speed_correlation(clip.directions, clip.audio, S))
        mismatched_corr.append(loudness_speed_correlation(other, clip.audio, S))
        vh_mean_pose.append(velocity_histogram_distance(rest, clip.directions, S))
        vh_mismatched.append(velocity_histogram_distance(other, clip.directions, S))
        assert velocity_histogram_distance(clip.directions, clip.directions, S) < 1e-6
        bc = beat_consistency(clip.directions, clip.audio, S)
        assert bc is None or 0.0 <= bc <= 1.0
    # the alignment measure tells the true speech from another clip's speech (BC does not, see docs/training.md)
    assert np.mean(true_corr) > np.mean(mismatched_corr) + 0.08
    # a motionless pose is far from real speed statistics; another real clip is much closer
    assert np.mean(vh_mean_pose) > np.mean(vh_mismatched) + 0.3
    assert loudness_speed_correlation(np.broadcast_to(S.rest_directions(), (60, 42, 3)), clips[0].audio, S) == 0.0


def test_jerk_is_lower_for_smooth_motion():
    t = np.arange(90) / 15.0
    rest = S.rest_directions()
    smooth = np.repeat(rest[None], 90, axis=0).copy()
    smooth[:, 4] = rest[4] + 0.3 * np.sin(2 * np.pi * 0.5 * t)[:, None] * np.array([0, 0, 1.0])
    noisy = smooth.copy()
    noisy[:, 4] += np.random.default_rng(0).standard_normal((90, 3)) * 0.05
    smooth /= np.linalg.norm(smooth, axis=-1, keepdims=True)
    noisy /= np.linalg.norm(noisy, axis=-1, keepdims=True)
    assert jerk_and_acceleration(smooth, S)[0] < 0.5 * jerk_and_acceleration(noisy, S)[0]
