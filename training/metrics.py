"""Gesture metrics: FGD, BC, diversity, L1, jerk/acceleration, velocity-histogram distance, loudness-speed alignment.

Conventions: motion is unit direction vectors (T, n_bones, 3) (mean added back) unless a function says it takes
normalised windows; joint positions are rebuilt with the skeleton's bone lengths (spine 0.26, the official units),
so speeds are in those units per second. Audio is 16 kHz float32.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from ha2g_model.skeleton import FINGER_NAMES, FPS, Skeleton, directions_to_positions, skeleton_statistics
from training.windows import SAMPLE_RATE

# --- distribution metrics on FGD features --------------------------------------------------------------------------


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) (the FID/FGD formula)."""
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    with warnings.catch_warnings():  # singular covariances are expected for constant baselines (the mean pose)
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # nearly singular product: regularise, as the FID reference code does
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def diversity(features: np.ndarray, seed: int = 0, max_samples: int = 500) -> float:
    """Mean L1 distance between generated features and a shuffled copy of them (official Diversity)."""
    rng = np.random.default_rng(seed)
    a = features[:max_samples]
    b = features[rng.permutation(len(features))[:len(a)]]
    return float(np.mean(np.abs(a - b).sum(-1)))


# --- per-sequence metrics ------------------------------------------------------------------------------------------

def l1_directions(generated: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute difference of unit direction vectors."""
    return float(np.mean(np.abs(generated - truth)))


def speeds(directions: np.ndarray, skeleton: Skeleton, joints: list[str] | None = None) -> np.ndarray:
    """(T-1, J) joint speeds in units per second (all joints, or the named ones)."""
    positions = directions_to_positions(directions, skeleton)
    if joints is not None:
        positions = positions[:, [skeleton.joint_names.index(j) for j in joints]]
    return np.linalg.norm(np.diff(positions, axis=0), axis=-1) * FPS


ARM_JOINTS = ["left_elbow", "right_elbow", "left_wrist", "right_wrist"]


def jerk_and_acceleration(directions: np.ndarray, skeleton: Skeleton) -> tuple[float, float]:
    """GENEA-style mean jerk and acceleration magnitudes over all joints (units/s^3, units/s^2)."""
    positions = directions_to_positions(directions, skeleton)
    acc = np.diff(positions, n=2, axis=0) * FPS ** 2
    jerk = np.diff(positions, n=3, axis=0) * FPS ** 3
    return float(np.linalg.norm(jerk, axis=-1).mean()), float(np.linalg.norm(acc, axis=-1).mean())


def velocity_histogram(directions: np.ndarray, skeleton: Skeleton, bins: np.ndarray | None = None) -> np.ndarray:
    """Normalised histogram of arm joint speeds (elbows and wrists)."""
    bins = VELOCITY_BINS if bins is None else bins
    hist, _ = np.histogram(np.clip(speeds(directions, skeleton, ARM_JOINTS), 0, bins[-1] - 1e-9), bins=bins)
    return hist / max(hist.sum(), 1)


VELOCITY_BINS = np.linspace(0.0, 2.0, 41)  # 0.05 units/s per bin; faster samples fall into the last bin


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(p * q)))))


def velocity_histogram_distance(generated: np.ndarray, truth: np.ndarray, skeleton: Skeleton) -> float:
    """Hellinger distance between the arm-speed histograms of a generated and the true sequence (GENEA)."""
    return hellinger(velocity_histogram(generated, skeleton), velocity_histogram(truth, skeleton))


def loudness(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames,) RMS loudness in dB per 15 fps frame, centred on the frame's time."""
    import librosa  # here, not at the top: training.train imports this module for frechet_distance alone

    hop = SAMPLE_RATE // FPS
    rms = librosa.feature.rms(y=audio, frame_length=2 * hop, hop_length=hop, center=True)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-5))
    out = np.full(n_frames, db.min() if len(db) else -100.0, dtype=np.float32)
    out[:min(n_frames, len(db))] = db[:n_frames]
    return out


def loudness_speed_correlation(directions: np.ndarray, audio: np.ndarray, skeleton: Skeleton,
                               max_lag: int = 4) -> float:
    """Speech-motion alignment: the best Pearson correlation between loudness and arm speed over lags of +-max_lag.

    Arm speed (mean of elbows and wrists) at frame t+1/2 is compared with loudness at frames t - lag, i.e. motion
    following the voice by up to max_lag frames (0.27 s), or preceding it (negative lags, also up to max_lag), as
    gestures tend to lead speech slightly. Motion without movement (a constant pose) scores 0.
    """
    speed = speeds(directions, skeleton, ARM_JOINTS).mean(axis=1)
    loud = loudness(audio, len(directions))
    loud = 0.5 * (loud[1:] + loud[:-1])  # the loudness between the two frames a speed is measured on
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        a = speed[max(0, lag):len(speed) + min(0, lag)]
        b = loud[max(0, -lag):len(loud) - max(0, lag)]
        if len(a) < 8 or a.std() < 1e-8 or b.std() < 1e-8:
            continue
        best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return 0.0 if best == -1.0 else best


def official_angle_pairs(skeleton: Skeleton, pairs_key: str, *value_keys: str) -> tuple[np.ndarray, ...]:
    """The official bone pairs (and their per-pair statistics) of `skeleton_statistics`, usable ones only.

    The official TED Expressive lists end with pairs (4, 42) and (21, 43): bones that do not exist in a 42-bone
    skeleton. They are dropped with their statistics.
    """
    stats = skeleton_statistics(skeleton.name)
    pairs = np.asarray(stats[pairs_key])
    valid = (pairs < skeleton.n_bones).all(axis=1)
    return (pairs[valid],) + tuple(np.asarray(stats[key], dtype=np.float32)[valid] for key in value_keys)


def beat_consistency(directions: np.ndarray, audio: np.ndarray, skeleton: Skeleton, sigma: float = 0.1,
                     threshold: float = 0.03) -> float | None:
    """Beat consistency (BC) of one sequence, the corrected version: angles of unit directions (mean added back).

    Motion beats are local minima of the mean normalised angle velocity of the official bone pairs that drop by at
    least `threshold` on one side; each audio onset scores exp(-d^2 / (2 sigma^2)) with d its distance to the
    nearest motion beat. Returns None when there is no motion beat or no onset (the official code skips those).
    """
    pairs, change = official_angle_pairs(skeleton, "bc_angle_pair", "bc_change_angle")
    a, b = directions[:, pairs[:, 0]], directions[:, pairs[:, 1]]
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    angles = np.arccos(np.clip(cos, -1.0, 1.0))  # (T, n_pairs)
    velocity = np.mean(np.abs(np.diff(angles, axis=0)) / change, axis=1)  # (T-1,)
    motion_beats = [t / FPS for t in range(2, len(velocity) - 1)
                    if velocity[t] < velocity[t - 1] and velocity[t] < velocity[t + 1]
                    and max(velocity[t - 1], velocity[t + 1]) - velocity[t] >= threshold]
    import librosa

    onsets = librosa.onset.onset_detect(y=audio.astype(np.float32), sr=SAMPLE_RATE, units="time")
    if not motion_beats or len(onsets) == 0:
        return None
    motion_beats = np.asarray(motion_beats)
    return float(np.mean([np.exp(-np.min((t - motion_beats) ** 2) / (2 * sigma ** 2)) for t in onsets]))


POSTURE_JOINTS = ["left_elbow", "right_elbow", "left_wrist", "right_wrist"]


def _joint_indices(skeleton: Skeleton, names: list[str]) -> list[int]:
    return [skeleton.joint_names.index(j) for j in names]


def wrist_excursion(directions: np.ndarray, skeleton: Skeleton) -> float:
    """How far the wrists travel from where they hover: mean distance of each wrist from its mean position (units)."""
    wrists = directions_to_positions(directions, skeleton)[:, _joint_indices(skeleton, ["left_wrist", "right_wrist"])]
    return float(np.linalg.norm(wrists - wrists.mean(axis=0), axis=-1).mean())


def mean_posture(directions: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(4, 3) mean positions of the elbows and wrists over a sequence: where its arms are on average."""
    return directions_to_positions(directions, skeleton)[:, _joint_indices(skeleton, POSTURE_JOINTS)].mean(axis=0)


def posture_spread(postures: list[np.ndarray]) -> float:
    """How much the average posture differs between sequences: RMS distance of each sequence's mean elbow/wrist
    positions from their mean over the sequences (units)."""
    stacked = np.stack(postures)
    return float(np.sqrt((np.linalg.norm(stacked - stacked.mean(axis=0), axis=-1) ** 2).mean()))


def finger_speed(directions: np.ndarray, skeleton: Skeleton) -> float | None:
    """Mean speed of the finger joints relative to their wrist (articulation, not the arm carrying the hand), in
    units/s; None for a skeleton without fingers."""
    fingers = {side: [i for i, name in enumerate(skeleton.joint_names) if name.startswith(f"{side}_")
                      and name.split("_")[1] in FINGER_NAMES] for side in ("left", "right")}
    if not fingers["left"]:
        return None
    positions = directions_to_positions(directions, skeleton)
    relative = np.concatenate([positions[:, idx] - positions[:, [skeleton.joint_names.index(f"{side}_wrist")]]
                               for side, idx in fingers.items()], axis=1)
    return float((np.linalg.norm(np.diff(relative, axis=0), axis=-1) * FPS).mean())


def time_shifted(audio: np.ndarray, fraction: float) -> np.ndarray:
    """The audio rotated by `fraction` of its length: the same speech, no longer in time with the motion."""
    return np.roll(audio, int(round(fraction * len(audio))))


def chance_loudness_speed_correlation(directions: np.ndarray, audio: np.ndarray, skeleton: Skeleton) -> float:
    """The alignment measure against time-shifted speech (mean over shifts of 1/4, 1/2, 3/4 of the sequence): what
    loudness_speed_correlation gives when motion and speech are unrelated but each keeps its statistics (its maximum
    over lags makes chance positive)."""
    return float(np.mean([loudness_speed_correlation(directions, time_shifted(audio, f), skeleton)
                          for f in (0.25, 0.5, 0.75)]))


def sequence_metrics(generated: np.ndarray, truth: np.ndarray, audio: np.ndarray, skeleton: Skeleton) -> dict:
    """All per-sequence metrics of `generated` against `truth` and the speech `audio`."""
    jerk, acc = jerk_and_acceleration(generated, skeleton)
    return {
        "l1": l1_directions(generated, truth),
        "vel_hist_dist": velocity_histogram_distance(generated, truth, skeleton),
        "loudness_speed_corr": loudness_speed_correlation(generated, audio, skeleton),
        "bc": beat_consistency(generated, audio, skeleton),
        "jerk": jerk,
        "acceleration": acc,
        "arm_speed": float(speeds(generated, skeleton, ARM_JOINTS).mean()),
        "loudness_speed_corr_chance": chance_loudness_speed_correlation(generated, audio, skeleton),
        "wrist_excursion": wrist_excursion(generated, skeleton),
        "finger_speed": finger_speed(generated, skeleton),
    }


def mean_metrics(rows: list[dict]) -> dict:
    """Mean of each metric over sequences, ignoring None (BC of a sequence without beats)."""
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = float(np.mean(values)) if values else None
    return out
