"""The daemon's kit and split-stem pieces of issue 14: the `stems`/`kit` options, `/darc/kits`,
and the piece/path pairs after `/darc/done`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from kit_support import sfz_kit
from server_support import write_mix

from darc_bridge.audio.music import synth_drumless_mix
from darc_bridge.client import ClientError
from darc_bridge.engines import GenerationParams
from darc_bridge.engines.kit import KitEngine
from darc_bridge.errors import InputError
from darc_bridge.outputs import OutputFolder
from darc_bridge.pipeline import OutputPlan, run_job
from darc_bridge.server import kits as server_kits
from darc_bridge.server import protocol as P


def test_generate_takes_stems_and_kit_options() -> None:
    req = P.parse_request("/darc/generate", ["j1", 9100, "/m.wav", "", "stems", "split", "kit", "/k/kit.sfz"])
    assert req.options == {"stems": "split", "kit": "/k/kit.sfz"}
    with pytest.raises(P.ProtocolError, match="stems must be a string"):
        P.parse_request("/darc/generate", ["j1", 9100, "/m.wav", "", "stems", 1])


def test_kits_request_takes_only_a_reply_port() -> None:
    req = P.parse_request("/darc/kits", [9100])
    assert (req.kind, req.reply_port) == ("kits", 9100)
    with pytest.raises(P.ProtocolError, match="takes only i reply_port") as err:
        P.parse_request("/darc/kits", [9100, "extra"])
    assert err.value.reply_port == 9100  # the error still goes to the named reply port


@pytest.mark.parametrize(("options", "engine", "error", "match"), [
    ({"stems": "all"}, "kit", P.ProtocolError, "stems must be mix or split"),
    ({"kit": "kits/mine.sfz"}, "kit", InputError, "must be absolute"),
    ({"kit": "No Such Kit 42"}, "kit", InputError, "unknown kit"),
    ({"kit": "/nowhere/kit.sfz"}, "kit", InputError, "kit not found"),
    ({"kit": "builtin"}, "darc", InputError, "plays no drum kit"),
])
def test_bad_job_options_are_refused(options, engine, error, match) -> None:
    with pytest.raises(error, match=match):
        server_kits.check_job_options({"stems": "mix", "kit": None, **options}, engine, "j")


def test_good_job_options_pass_and_give_the_engine_its_kit(tmp_path: Path) -> None:
    kit = str(sfz_kit(tmp_path))
    opts = {"stems": "split", "kit": kit}
    server_kits.check_job_options(opts, "kit")
    assert server_kits.job_extra(opts) == {"kit": kit}
    assert server_kits.job_extra({"kit": None}) == {}
    assert server_kits.job_stems({"stems": None}) == "mix"


def test_split_outputs_skip_names_whose_pieces_are_taken(tmp_path: Path) -> None:
    """The daemon's numbered all-or-none commit moves the whole split set to a free name."""
    mix, _, _ = synth_drumless_mix(2.0, bpm=120, sample_rate=22050, seed=0)
    sf.write(tmp_path / "mix.wav", mix.T, 22050)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "take.hats.wav").write_bytes(b"someone else's")
    with OutputFolder.open(out_dir) as folder:
        plan = OutputPlan(folder, "take", True, "t1", stems="split")
        out = run_job(KitEngine(), tmp_path / "mix.wav", None, None, GenerationParams(seed=1), plan=plan)
    assert (out.stem_path.name, out.midi_path.name) == ("take-2.wav", "take-2.mid")
    assert out.pieces and all(p.name.startswith("take-2.") for p in out.pieces.values())
    assert (out_dir / "take.hats.wav").read_bytes() == b"someone else's"


def test_done_pairs_follow_the_piece_order() -> None:
    pieces = {"kick": Path("/o/d.kick.wav"), "hats": Path("/o/d.hats.wav")}
    assert server_kits.done_pairs(pieces) == ("kick", "/o/d.kick.wav", "hats", "/o/d.hats.wav")
    assert server_kits.done_pairs({}) == ()


@pytest.mark.slow
def test_kits_reply_lists_the_kit_names(server_kit_daemon) -> None:
    with server_kit_daemon.client() as c:
        names = c.kits()
    assert names[0] == "builtin"
    assert names == server_kits.kit_names()  # the daemon runs with this process's environment


@pytest.mark.slow
def test_split_job_with_a_kit_path_sends_its_piece_stems(server_kit_daemon, server_out_dir, tmp_path) -> None:
    mix = write_mix(tmp_path / "mix.wav", seconds=2.0)
    kit = sfz_kit(tmp_path / "kit")
    with server_kit_daemon.client() as c:
        c.generate("split-1", str(mix), "", {"stems": "split", "kit": str(kit), "temperature": 0.0,
                                             "out_dir": str(server_out_dir)})
        final = c.wait("split-1")
    assert final["state"] == "done", final
    out = Path(final["stem_path"])
    assert final["stems"] == {p: str(out.with_name(f"drums-split-1.{p}.wav")) for p in ("kick", "snare", "hats")}
    stem, _ = sf.read(out, always_2d=True)
    total = sum(sf.read(p, always_2d=True)[0] for p in final["stems"].values())
    assert np.max(np.abs(total - stem)) < 1e-6
    assert sorted(os.listdir(server_out_dir)) == sorted(
        ["drums-split-1.wav", "drums-split-1.mid", *(Path(p).name for p in final["stems"].values())])


@pytest.mark.slow
def test_mix_job_sends_five_done_arguments_and_a_bad_kit_is_refused(server_kit_daemon, server_out_dir,
                                                                     tmp_path) -> None:
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    with server_kit_daemon.client() as c:
        c.generate("mix-1", str(mix), "", {"midi": 0, "out_dir": str(server_out_dir)})
        final = c.wait("mix-1")
        assert final["state"] == "done" and final["stems"] == {}
        with pytest.raises(ClientError) as info:
            c.generate("badkit-1", str(mix), "", {"kit": "No Such Kit 42", "out_dir": str(server_out_dir)})
        assert info.value.code == "bad_input" and "unknown kit" in info.value.message
        with pytest.raises(ClientError) as info:
            c.generate("badstems-1", str(mix), "", {"stems": "both", "out_dir": str(server_out_dir)})
        assert info.value.code == "bad_request"
    assert os.listdir(server_out_dir) == ["drums-mix-1.wav"]


def test_serve_passes_its_kit_to_the_engine() -> None:
    from darc_bridge.cli.main import build_parser
    from darc_bridge.cli.serve import engine_options

    args = build_parser().parse_args(["serve", "--kit", "FluidR3_GM"])
    assert engine_options(args) == {"kit": "FluidR3_GM"}
    args = build_parser().parse_args(["serve", "--kit-dir", "/k/dusty"])
    assert engine_options(args) == {"kit": "/k/dusty"}
    assert engine_options(build_parser().parse_args(["serve"])) == {}
    with pytest.raises(InputError, match="--kit picks the kit engine's drum kit"):
        engine_options(build_parser().parse_args(["serve", "--engine", "darc", "--kit", "FluidR3_GM"]))
