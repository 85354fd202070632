"""Kits musicians own (Hydrogen, SFZ, SoundFont, WAV folders) as kit-engine DrumKits: velocity layers,
round-robin, faded tails, clear errors; plus one slow test each on Debian's real kits."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from kit_support import SR, dominant_freq, hydrogen_kit, sfz_kit, tiny_sf2, tone, write_tone

from darc_bridge.engines import GenerationParams
from darc_bridge.engines.drumkit import PIECES, TAIL_DBFS, fade_tail, load_kit_folder
from darc_bridge.engines.kit import KitEngine
from darc_bridge.engines.kitfiles import load_hydrogen, load_kit, load_sfz, load_soundfont, strength_of
from darc_bridge.engines.stems import render_hits
from darc_bridge.errors import InputError
from darc_bridge.kits import soundfont as soundfont_mod
from darc_bridge.kits.library import resolve_kit
from darc_bridge.kits.sfz import note_number, read_sfz
from darc_bridge.rhythm.features import Onset
from darc_bridge.rhythm.midi import velocity_of

KICK, SNARE, HAT = PIECES.index("kick"), PIECES.index("snare"), PIECES.index("hat")
needs_fluidsynth = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="FluidSynth is not installed")


def freq_of_hit(kit, cls: int, strength: float) -> float:
    _, samples = kit.layer_for(cls, strength)
    return dominant_freq(samples[0], kit.sample_rate)


def tail_db(x: np.ndarray, sr: int) -> float:
    """Level of a one-shot's last millisecond against its peak, dB."""
    last = np.max(np.abs(x[:, -max(1, sr // 1000):]))
    return float(20 * np.log10(max(last, 1e-12) / np.max(np.abs(x))))


def hit_freqs(kit, hits: list[Onset], spacing_s: float) -> list[float]:
    stem, _ = render_hits(hits, int((len(hits) + 1) * spacing_s * kit.sample_rate), kit.sample_rate, kit)
    n = int(0.2 * kit.sample_rate)
    return [dominant_freq(stem[:, int(o.time * kit.sample_rate):int(o.time * kit.sample_rate) + n], kit.sample_rate)
            for o in hits]


# ------------------------------------------------------------------ SFZ reader


@pytest.mark.parametrize(("key", "number"), [("36", 36), ("c4", 60), ("C1", 24), ("f#2", 42), ("db4", 61),
                                             ("c-1", 0), ("g9", 127)])
def test_sfz_keys_are_numbers_or_note_names(key: str, number: int) -> None:
    assert note_number(key) == number


@pytest.mark.parametrize("key", ["h3", "c10", "128", ""])
def test_sfz_bad_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError):
        note_number(key)


def test_sfz_regions_take_group_defaults_default_path_and_keep_spaces_in_names(tmp_path: Path) -> None:
    kit = read_sfz(sfz_kit(tmp_path))
    assert kit.name == "tiny"
    by = kit.by_piece()
    assert set(by) == {"kick", "snare", "hat"}
    assert [(r.sample.name, r.lovel, r.hivel) for r in by["kick"]] == [("kick soft.wav", 1, 63), ("kick hard.wav", 64, 127)]
    assert [r.sample.name for r in by["snare"]] == ["snare_a.wav", "snare_b.wav"]  # seq_position order
    assert [r.lokey for r in by["hat"]] == [42]  # f#2, and the release-trigger region is left out
    assert all(r.sample.parent == tmp_path / "samples" for r in kit.regions)


def test_sfz_missing_sample_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    write_tone(tmp_path / "k.wav", 100)
    p = tmp_path / "k.sfz"
    p.write_text("<region> key=36 sample=k.wav\n<region> key=38 sample=gone.wav\n")
    with caplog.at_level(logging.WARNING):
        kit = read_sfz(p)
    assert [r.lokey for r in kit.regions] == [36]
    assert "gone.wav" in caplog.text


@pytest.mark.parametrize(("text", "match"), [
    ("<group> key=36\n", "no <region>"),
    ("<region> key=36 sample=gone.wav\n", "no playable region"),
    ("<region> key=20 sample=k.wav\n", "no region to a General MIDI drum key"),
    ("<region> key=36 lovel=90 hivel=10 sample=k.wav\n", "empty key or velocity range"),
    ("<region> key=zz sample=k.wav\n", "bad region opcode"),
])
def test_sfz_without_a_playable_drum_is_refused(tmp_path: Path, text: str, match: str) -> None:
    write_tone(tmp_path / "k.wav", 100)
    (tmp_path / "k.sfz").write_text(text)
    with pytest.raises(InputError, match=match):
        read_sfz(tmp_path / "k.sfz")


def test_sfz_backslash_paths_and_defines(tmp_path: Path) -> None:
    write_tone(tmp_path / "sub" / "k.wav", 100)
    (tmp_path / "k.sfz").write_text("#define $KICK 36\n<control> default_path=sub\\\n<region> key=$KICK sample=k.wav\n")
    assert read_sfz(tmp_path / "k.sfz").regions[0].sample == tmp_path / "sub" / "k.wav"


# ------------------------------------------------------------------ velocity layers and round-robin


def test_strength_and_velocity_map_both_ways() -> None:
    for v in (1, 40, 64, 127):
        assert velocity_of(strength_of(v)) == v


@pytest.mark.parametrize("make", ["hydrogen", "sfz"])
def test_velocity_picks_the_layer(tmp_path: Path, make: str) -> None:
    kit = load_hydrogen(hydrogen_kit(tmp_path), SR) if make == "hydrogen" else load_sfz(sfz_kit(tmp_path), SR)
    assert abs(freq_of_hit(kit, KICK, 0.2) - 200) < 20
    assert abs(freq_of_hit(kit, KICK, 0.9) - 400) < 20
    assert len(kit.layers["kick"]) == 2 and len(kit.layers["snare"]) == 1
    assert abs(freq_of_hit(kit, HAT, 0.5) - 5000) < 50


@pytest.mark.parametrize("make", ["hydrogen", "sfz"])
def test_round_robin_alternates_takes_within_a_layer(tmp_path: Path, make: str) -> None:
    kit = load_hydrogen(hydrogen_kit(tmp_path), SR) if make == "hydrogen" else load_sfz(sfz_kit(tmp_path), SR)
    hits = [Onset(0.5 * k, SNARE, 0.8) for k in range(4)]
    freqs = hit_freqs(kit, hits, 0.5)
    assert [round(f, -2) for f in freqs] == [1000, 1300, 1000, 1300]


def test_round_robin_counts_each_layer_on_its_own(tmp_path: Path) -> None:
    """A soft hit between two loud ones must not advance the loud layer's round-robin."""
    write_tone(tmp_path / "soft.wav", 300)
    for f in (1000, 1300):
        write_tone(tmp_path / f"hard{f}.wav", f)
    (tmp_path / "k.sfz").write_text("<group> key=38\n<region> sample=soft.wav hivel=50\n"
                                    "<region> lovel=51 sample=hard1000.wav seq_position=1\n"
                                    "<region> lovel=51 sample=hard1300.wav seq_position=2\n")
    kit = load_sfz(tmp_path / "k.sfz", SR)
    hits = [Onset(0.0, SNARE, 0.9), Onset(0.5, SNARE, 0.1), Onset(1.0, SNARE, 0.9)]
    assert [round(f, -2) for f in hit_freqs(kit, hits, 0.5)] == [1000, 300, 1300]


def test_a_gap_between_layers_plays_the_nearest(tmp_path: Path) -> None:
    write_tone(tmp_path / "soft.wav", 300)
    write_tone(tmp_path / "hard.wav", 900)
    (tmp_path / "k.sfz").write_text("<region> key=36 hivel=20 sample=soft.wav\n<region> key=36 lovel=100 sample=hard.wav\n")
    kit = load_sfz(tmp_path / "k.sfz", SR)
    assert abs(freq_of_hit(kit, KICK, strength_of(30)) - 300) < 30
    assert abs(freq_of_hit(kit, KICK, strength_of(90)) - 900) < 30


def test_missing_piece_borrows_a_layered_neighbour(tmp_path: Path) -> None:
    kit = load_sfz(sfz_kit(tmp_path), SR)  # no clap: the clap borrows the snare
    key, samples = kit.layer_for(PIECES.index("clap"), 0.5)
    assert key[0] == "snare"
    assert round(dominant_freq(samples[0], SR), -2) in (1000, 1300)


def test_layered_kit_keeps_the_loudest_layer_as_its_plain_sounds(tmp_path: Path) -> None:
    kit = load_hydrogen(hydrogen_kit(tmp_path), SR)
    assert abs(dominant_freq(kit.sounds["kick"][0], SR) - 400) < 20
    assert kit.pieces() == ["kick", "snare", "hat"]  # the cowbell is no kit piece


def test_hydrogen_instrument_and_layer_gains_are_applied(tmp_path: Path) -> None:
    xml = hydrogen_kit(tmp_path)
    plain = load_hydrogen(xml, SR).layers["kick"][0].samples[0]
    xml.write_text(xml.read_text().replace("<volume>1</volume>", "<volume>0.5</volume>"))
    halved = load_hydrogen(xml, SR).layers["kick"][0].samples[0]
    assert np.allclose(halved, 0.5 * plain, atol=1e-6)


def test_kit_samples_are_resampled_to_the_job_rate(tmp_path: Path) -> None:
    kit = load_sfz(sfz_kit(tmp_path), 44100)
    assert kit.sample_rate == 44100
    assert abs(freq_of_hit(kit, KICK, 0.9) - 400) < 20


# ------------------------------------------------------------------ tails


def test_long_one_shot_is_cut_and_faded_below_minus_60_db(tmp_path: Path) -> None:
    write_tone(tmp_path / "crash.wav", 3000, seconds=6.0, decay_s=None)  # rings at full level past 4 s
    kit = load_kit_folder(tmp_path, SR)
    (x,) = kit.sounds["crash"]
    assert x.shape[1] == 4 * SR
    assert tail_db(x, SR) < TAIL_DBFS
    assert np.max(np.abs(x[:, : 3 * SR])) > 0.7  # only the end is faded


def test_a_sample_that_ends_loud_is_faded_and_a_decayed_one_is_left_alone() -> None:
    loud = np.stack([tone(500, seconds=1.0, decay_s=None)] * 2)
    assert tail_db(loud, SR) > -10
    faded = fade_tail(loud, SR)
    assert tail_db(faded, SR) < TAIL_DBFS and faded.shape == loud.shape
    decayed = np.stack([tone(500, seconds=1.0, decay_s=0.05)] * 2)
    assert np.array_equal(fade_tail(decayed, SR), decayed)


# ------------------------------------------------------------------ SoundFonts


@needs_fluidsynth
def test_soundfont_kit_has_velocity_layers_and_faded_tails(tmp_path: Path) -> None:
    kit = load_soundfont(tiny_sf2(tmp_path / "tiny.sf2"), SR)
    assert set(kit.layers) == {"kick", "snare", "crash"}  # only keys the font plays
    assert abs(freq_of_hit(kit, KICK, 0.1) - 200) < 20
    assert abs(freq_of_hit(kit, KICK, 1.0) - 400) < 20
    soft, hard = kit.layers["snare"][0].samples[0], kit.layers["snare"][-1].samples[0]
    assert np.max(np.abs(hard)) > 2 * np.max(np.abs(soft))  # the font's velocity curve is kept
    assert np.max(np.abs(np.concatenate([la.samples[0] for la in kit.layers["kick"]], axis=1))) == pytest.approx(1.0, abs=1e-3)
    for layer in kit.layers["crash"]:  # the 3 s crash is cut by the 2.5 s slot: its tail must be faded
        assert tail_db(layer.samples[0], SR) < TAIL_DBFS


def test_soundfont_without_fluidsynth_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(soundfont_mod.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="needs FluidSynth: install it"):
        KitEngine(kit=str(tiny_sf2(tmp_path / "tiny.sf2"))).load()


# ------------------------------------------------------------------ the engine plays every format


@pytest.mark.parametrize("fmt", ["folder", "hydrogen", "sfz", "sf2"])
def test_engine_plays_every_kit_format(tmp_path: Path, fmt: str) -> None:
    if fmt == "sf2" and shutil.which("fluidsynth") is None:
        pytest.skip("FluidSynth is not installed")
    if fmt == "folder":
        write_tone(tmp_path / "kick.wav", 400)
        path = tmp_path
    else:
        path = {"hydrogen": lambda: hydrogen_kit(tmp_path).parent, "sfz": lambda: sfz_kit(tmp_path),
                "sf2": lambda: tiny_sf2(tmp_path / "tiny.sf2")}[fmt]()
    engine = KitEngine(kit=str(path))
    assert engine.kit_entry.format == fmt
    from darc_bridge.beat.grid import BeatGrid

    grid = BeatGrid(120.0, np.arange(0, 2.0, 0.5), np.array([0.0]), 2.0)
    from darc_bridge.rhythm.features import RhythmFeatures

    rhythm = RhythmFeatures.from_onsets([Onset(t, KICK, 1.0) for t in (0.0, 0.5, 1.0, 1.5)], 2.0, n_classes=3)
    res = engine.render_from_rhythm(rhythm, grid, 2 * SR, SR, GenerationParams(temperature=0))
    assert abs(dominant_freq(res.stem[:, :SR // 4], SR) - 400) < 20
    assert np.max(np.abs(res.stem)) <= 10 ** (-1 / 20) + 1e-6


def test_job_kit_overrides_the_engines_kit_and_is_kept_loaded(tmp_path: Path) -> None:
    engine = KitEngine()
    sfz = str(sfz_kit(tmp_path))
    first = engine.kit(SR, sfz)
    assert first is engine.kit(SR, sfz)  # loaded once
    assert engine.kit(SR) is engine.kit(SR) and engine.kit(SR).name == "builtin"
    for i in range(3):  # more job kits than are kept: the oldest is dropped, the engine's own stays
        d = tmp_path / f"k{i}"
        write_tone(d / "kick.wav", 300 + 100 * i)
        engine.kit(SR, str(d))
    assert engine.kit(SR, sfz) is not first
    assert len(engine._kits) <= 1 + 2


def test_unknown_kit_name_is_refused_at_construction() -> None:
    with pytest.raises(InputError, match="unknown kit 'no such kit'"):
        KitEngine(kit="no such kit")


def test_kit_and_kit_dir_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="kit or kit_dir"):
        KitEngine(kit="builtin", kit_dir=str(tmp_path))


# ------------------------------------------------------------------ Debian's real kits (slow)


@pytest.mark.slow
def test_debian_hydrogen_kit_plays_its_velocity_layers() -> None:
    xml = Path("/usr/share/hydrogen/data/drumkits/The Black Pearl 1.0/drumkit.xml")
    if not xml.is_file():
        pytest.skip("hydrogen-drumkits is not installed")
    kit = load_kit(resolve_kit("The Black Pearl 1.0"), 44100)
    assert {"kick", "snare", "hat", "open_hat", "tom", "crash", "ride"} <= set(kit.layers)
    kicks = kit.layers["kick"]
    assert len(kicks) >= 3
    soft, loud = kit.layer_for(KICK, 0.05)[1][0], kit.layer_for(KICK, 1.0)[1][0]
    assert soft is not loud and np.max(np.abs(loud)) > np.max(np.abs(soft))
    for piece in kit.layers:
        for layer in kit.layers[piece]:
            for x in layer.samples:
                assert tail_db(x, 44100) < TAIL_DBFS, piece


@pytest.mark.slow
@needs_fluidsynth
def test_debian_gm_soundfont_renders_a_layered_kit() -> None:
    sf2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    if not sf2.is_file():
        pytest.skip("fluid-soundfont-gm is not installed")
    kit = load_kit(resolve_kit("FluidR3_GM"), 44100)
    assert set(kit.layers) == set(PIECES)
    for piece, layers in kit.layers.items():
        peaks = [float(np.max(np.abs(la.samples[0]))) for la in layers]
        assert peaks == sorted(peaks) and peaks[0] < peaks[-1], piece  # harder hits are louder
        assert all(tail_db(la.samples[0], 44100) < TAIL_DBFS for la in layers), piece
    hat, crash = kit.sounds["hat"][0], kit.sounds["crash"][0]
    assert hat.shape[1] < crash.shape[1]  # trimmed to where it sounds: a closed hat is short
    assert dominant_freq(kit.sounds["kick"][0], 44100) < dominant_freq(hat, 44100)


def test_an_unusable_sample_leaves_only_its_layer_out(tmp_path: Path, caplog) -> None:
    xml = hydrogen_kit(tmp_path)
    sf.write(tmp_path / "kick_soft.wav", np.zeros(2000, dtype=np.float32), SR)  # silent now
    with caplog.at_level(logging.WARNING):
        kit = load_hydrogen(xml, SR)
    assert len(kit.layers["kick"]) == 1 and abs(freq_of_hit(kit, KICK, 0.1) - 400) < 20  # the nearest layer
    assert "kick_soft.wav" in caplog.text


def test_kit_dir_is_always_a_path_even_when_a_listed_kit_has_its_name(tmp_path: Path, monkeypatch) -> None:
    user = tmp_path / "user"
    write_tone(user / "dusty" / "kick.wav", 100)
    write_tone(tmp_path / "work" / "dusty" / "kick.wav", 700)
    monkeypatch.setenv("DARC_BRIDGE_KITS", str(user))
    monkeypatch.chdir(tmp_path / "work")
    assert KitEngine(kit="dusty").kit_entry.path == str(user / "dusty")  # a name: the listed kit
    assert KitEngine(kit_dir="dusty").kit_entry.path == "dusty"  # a kit_dir: the folder here
