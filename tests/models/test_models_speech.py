"""The keyword-spotting task's data: its features, and the stored splits they made."""

import numpy as np

from models import speech
from models.tasks import get_task


def test_log_mel_puts_a_tone_in_its_band_and_frame():
    t = np.arange(speech.RATE) / speech.RATE
    tone = np.where((t > 0.5) & (t < 0.75), np.sin(2 * np.pi * 1000.0 * t), 0.0) + 1e-4
    features = speech.log_mel(tone)
    assert features.shape == (speech.FRAMES, speech.BANDS)
    loudness = features.max(axis=1)
    assert sorted(np.argsort(loudness)[-4:].tolist()) == [8, 9, 10, 11]  # the frames the tone fills
    assert np.all(loudness[:7] < loudness.min() + 1) and np.all(loudness[13:] < loudness.min() + 1)
    centres = 700.0 * (10 ** (np.linspace(speech._mel(100.0), speech._mel(7000.0), speech.BANDS + 2) / 2595) - 1)
    assert abs(centres[1:-1][np.argmax(features[9])] - 1000.0) < 250.0  # the band whose centre is nearest


def test_the_stored_splits_are_balanced_inputs_in_the_unit_range():
    task = get_task("kws_yes")
    for split, size in zip((task.train, task.val, task.test), (4000, 600, 600)):
        assert split.x.shape == (size, speech.FRAMES, speech.BANDS) and split.x.dtype == np.float32
        assert 0.0 <= split.x.min() and split.x.max() <= 1.0
        assert np.mean(split.y) == 0.5 and set(np.unique(split.y)) == {0, 1}
    # the keyword and the other words differ on average, which a classifier needs
    gap = np.abs(task.train.x[task.train.y == 1].mean(0) - task.train.x[task.train.y == 0].mean(0))
    assert gap.max() > 0.05
