"""Per-piece stems (`--stems split`): sample-aligned, summing to the mixed stem (limiter included),
written with the other outputs all together or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from kit_support import sfz_kit

from darc_bridge.audio.music import synth_drumless_mix
from darc_bridge.beat.grid import BeatGrid
from darc_bridge.cli.main import main
from darc_bridge.engines import GenerationParams
from darc_bridge.engines.drumkit import PIECES, builtin_kit
from darc_bridge.engines.kit import KitEngine
from darc_bridge.engines.stems import STEM_PIECES, render_hits, stem_of_class
from darc_bridge.errors import InputError, OutputError
from darc_bridge.pipeline import piece_paths, run_job
from darc_bridge.rhythm.features import Onset, RhythmFeatures

SR = 22050
CEILING = 10 ** (-1 / 20)


def every_piece(duration: float, strength: float = 0.8, step: float = 0.125) -> list[Onset]:
    return [Onset(float(t), k % len(PIECES), strength) for k, t in enumerate(np.arange(0.0, duration - 0.3, step))]


@pytest.fixture(scope="module")
def mix_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mix")
    mix, _, _ = synth_drumless_mix(4.0, bpm=120, sample_rate=SR, seed=0)
    sf.write(folder / "mix.wav", mix.T, SR)
    return folder / "mix.wav"


def test_classes_go_to_their_stems() -> None:
    assert [stem_of_class(PIECES.index(p)) for p in PIECES] == [
        "kick", "snare", "hats", "hats", "toms", "cymbals", "cymbals", "snare"]


@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_pieces_sum_to_the_mix_also_when_the_limiter_acts(strength: float) -> None:
    kit = builtin_kit(SR)
    hits = every_piece(3.0, strength, step=0.125 if strength < 1 else 0.01)  # 0.01 s apart: far past the ceiling
    mix, pieces = render_hits(hits, 3 * SR, SR, kit, split=True)
    assert list(pieces) == list(STEM_PIECES)
    total = np.sum([x for x in pieces.values()], axis=0)
    assert np.max(np.abs(total - mix)) < 1e-6
    assert np.max(np.abs(mix)) <= CEILING + 1e-6
    for x in pieces.values():
        assert x.shape == mix.shape and x.dtype == np.float32
    plain, none = render_hits(hits, 3 * SR, SR, kit, split=False)
    assert none is None and np.max(np.abs(plain - mix)) < 1e-5  # the same stem as without split
    if strength == 1.0:
        unlimited, _ = render_hits(hits, 3 * SR, SR, kit, ceiling_dbfs=40.0)
        assert np.max(np.abs(unlimited)) > 2.0  # the limiter really acted in this case


def test_only_pieces_that_play_get_a_stem_and_a_clap_is_on_the_snare_stem() -> None:
    kit = builtin_kit(SR)
    hits = [Onset(0.1, PIECES.index("kick"), 0.8), Onset(0.6, PIECES.index("clap"), 0.8)]
    mix, pieces = render_hits(hits, SR, SR, kit, split=True)
    assert list(pieces) == ["kick", "snare"]
    clap_start = int(0.6 * SR)
    assert np.max(np.abs(pieces["snare"][:, :clap_start])) == 0.0
    assert np.max(np.abs(pieces["snare"][:, clap_start:])) > 0.1
    before_clap = np.max(np.abs(pieces["kick"][:, clap_start - SR // 10:clap_start]))
    assert np.max(np.abs(pieces["kick"][:, clap_start:])) <= before_clap  # only the kick's own tail, no clap


def test_engine_returns_pieces_only_when_split_is_asked(tmp_path: Path) -> None:
    engine = KitEngine(kit=str(sfz_kit(tmp_path)))
    beats = np.arange(0.0, 2.0, 0.5)
    grid = BeatGrid(120.0, beats, beats[::4].copy(), 2.0)
    rhythm = RhythmFeatures.from_onsets(every_piece(2.0), 2.0, n_classes=len(PIECES))
    mixed = engine.render_from_rhythm(rhythm, grid, 2 * SR, SR, GenerationParams(temperature=0))
    assert mixed.pieces is None
    split = engine.render_from_rhythm(rhythm, grid, 2 * SR, SR,
                                      GenerationParams(temperature=0, extra={"stems": "split"}))
    assert set(split.pieces) == set(STEM_PIECES)  # toms and cymbals borrow kit sounds but keep their stems
    assert np.max(np.abs(sum(split.pieces.values()) - split.stem)) < 1e-6
    assert np.max(np.abs(split.stem - mixed.stem)) < 1e-5
    with pytest.raises(InputError, match="stems must be one of"):
        engine.render_from_rhythm(rhythm, grid, 2 * SR, SR, GenerationParams(extra={"stems": "all"}))


def test_run_job_writes_the_piece_stems_beside_the_stem(mix_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "take.wav"
    res = run_job(KitEngine(), mix_file, None, out, GenerationParams(temperature=0), midi_path=tmp_path / "take.mid",
                  stems="split")
    assert res.pieces == {p: tmp_path / f"take.{p}.wav" for p in ("kick", "snare", "hats")}  # the grid groove
    stem, sr = sf.read(out, always_2d=True)
    total = sum(sf.read(p, always_2d=True)[0] for p in res.pieces.values())
    assert total.shape == stem.shape and np.max(np.abs(total - stem)) < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["take.wav", "take.mid", "take.kick.wav", "take.snare.wav", "take.hats.wav"])


def test_mix_only_writes_no_piece_stems(mix_file: Path, tmp_path: Path) -> None:
    res = run_job(KitEngine(), mix_file, None, tmp_path / "take.wav", GenerationParams(temperature=0))
    assert res.pieces == {}
    assert [p.name for p in tmp_path.iterdir()] == ["take.wav"]


def test_piece_paths_follow_the_stem_name() -> None:
    assert piece_paths("/x/my take.wav")["cymbals"] == Path("/x/my take.cymbals.wav")
    assert list(piece_paths("/x/a.wav")) == list(STEM_PIECES)


def test_an_existing_piece_file_is_refused_before_any_work(mix_file: Path, tmp_path: Path) -> None:
    (tmp_path / "take.snare.wav").write_bytes(b"the user's own file")

    class Boom(KitEngine):
        def generate(self, *a, **k):  # pragma: no cover - must not be reached
            raise AssertionError("generated although an output exists")

    with pytest.raises(OutputError, match="already exists"):
        run_job(Boom(), mix_file, None, tmp_path / "take.wav", GenerationParams(), overwrite=False, stems="split")
    assert (tmp_path / "take.snare.wav").read_bytes() == b"the user's own file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.snare.wav"]


def test_a_failing_output_leaves_none_of_the_job_behind(mix_file: Path, tmp_path: Path, monkeypatch) -> None:
    import errno

    import darc_bridge.pipeline as pipeline

    def failing_midi(result):  # the per-piece stems and the mixed stem are fine, the MIDI hits a full disk
        def write(fh):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write

    monkeypatch.setattr(pipeline, "_midi_writer", failing_midi)
    with pytest.raises(OutputError, match="no space left"):
        run_job(KitEngine(), mix_file, None, tmp_path / "take.wav", GenerationParams(temperature=0),
                midi_path=tmp_path / "take.mid", stems="split")
    assert list(tmp_path.iterdir()) == []


def test_split_with_an_engine_without_pieces_is_refused(mix_file: Path, tmp_path: Path) -> None:
    class MixOnly(KitEngine):
        name = "mixonly"
        renders_pieces = False

    with pytest.raises(InputError, match="renders one mixed stem only"):
        run_job(MixOnly(), mix_file, None, tmp_path / "take.wav", GenerationParams(), stems="split")
    with pytest.raises(InputError, match="stems must be one of"):
        run_job(KitEngine(), mix_file, None, tmp_path / "take.wav", GenerationParams(), stems="both")
    assert list(tmp_path.iterdir()) == []


def test_generate_cli_split_with_a_kit_path(mix_file: Path, tmp_path: Path, capsys) -> None:
    kit = sfz_kit(tmp_path / "kit")
    out = tmp_path / "drums.wav"
    code = main(["generate", "--mix", str(mix_file), "--out", str(out), "--stems", "split", "--kit", str(kit),
                 "--temperature", "0", "--json", "--quiet"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["kit"] == "tiny"
    assert result["stems"] == {p: str(tmp_path / f"drums.{p}.wav") for p in ("kick", "snare", "hats")}
    assert all(Path(p).is_file() for p in result["stems"].values())


def test_generate_cli_unknown_kit_is_exit_status_2(mix_file: Path, tmp_path: Path, capsys) -> None:
    code = main(["generate", "--mix", str(mix_file), "--out", str(tmp_path / "d.wav"), "--kit", "nope-kit"])
    assert code == 2
    assert "unknown kit 'nope-kit'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_midi_beside_split_stems_holds_each_stems_hits(mix_file: Path, tmp_path: Path) -> None:
    """The MIDI track a DAW builds its clip from: GM notes on channel 10 at the song tempo, each note's
    hit starting on the stem of its piece."""
    import mido

    from darc_bridge.rhythm.midi import read_midi_onsets

    out, midi = tmp_path / "take.wav", tmp_path / "take.mid"
    res = run_job(KitEngine(), mix_file, None, out, GenerationParams(temperature=0), midi_path=midi, stems="split")
    notes = [m for m in mido.MidiFile(midi) if m.type == "note_on"]
    assert notes and {m.channel for m in notes} == {9} and {m.note for m in notes} == {36, 38, 42}
    tempo = next(m.tempo for m in mido.MidiFile(midi) if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(res.info["tempo"], abs=0.01)
    stems = {p: sf.read(path, always_2d=True)[0] for p, path in res.pieces.items()}
    for o in read_midi_onsets(midi):
        start, x = int(round(o.time * SR)), stems[stem_of_class(o.cls)]
        level = np.max(np.abs(x[start:start + SR // 50]))
        before = np.max(np.abs(x[max(0, start - SR // 200):start])) if start else 0.0
        assert level > 0.05 and level > 2 * before, o  # the note's hit starts on its piece's stem
