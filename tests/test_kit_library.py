"""The kit list (`darc-bridge kits`) and how a name or a path becomes a kit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kit_support import hydrogen_kit, sfz_kit, tiny_sf2, write_tone

from darc_bridge.cli.main import main
from darc_bridge.errors import InputError
from darc_bridge.kits.library import KitEntry, kit_at_path, list_kits, resolve_kit, user_kit_dir


@pytest.fixture()
def places(tmp_path: Path) -> dict[str, Path]:
    """A user kit folder (a WAV folder, a Hydrogen kit, an SFZ, an SF2), a Hydrogen folder, a SoundFont folder."""
    user, h2, sf2 = tmp_path / "user", tmp_path / "h2", tmp_path / "sf2"
    write_tone(user / "Dusty" / "kick.wav", 100)
    hydrogen_kit(user / "MyH2", name="My Hydrogen")
    sfz_kit(user / "sfzkit", name="808")
    (user / ".hidden").mkdir()
    hydrogen_kit(h2 / "Rock", name="Rock Kit")
    hydrogen_kit(h2 / "Again", name="Dusty")  # a name the user kit folder has already
    write_tone(h2 / "Hands" / "djembe.wav", 300)  # hand percussion only: no kit piece, not listed
    (h2 / "Hands" / "drumkit.xml").write_text(
        "<drumkit_info><name>Hands</name><instrumentList><instrument><name>Djembe Bass</name>"
        "<filename>djembe.wav</filename></instrument></instrumentList></drumkit_info>")
    sf2.mkdir()
    tiny_sf2(sf2 / "GM.sf2")
    (sf2 / "notes.txt").write_text("not a font")
    return {"user": user, "h2": h2, "sf2": sf2}


def listed(places: dict[str, Path]) -> list[KitEntry]:
    return list_kits(places["user"], (places["h2"],), (places["sf2"],))


def test_builtin_first_then_user_then_hydrogen_then_soundfonts(places) -> None:
    kits = listed(places)
    assert [(k.name, k.format) for k in kits] == [
        ("builtin", "builtin"), ("Dusty", "folder"), ("My Hydrogen", "hydrogen"), ("sfzkit", "sfz"),
        ("Rock Kit", "hydrogen"), ("GM", "sf2")]
    assert kits[0].path == ""
    assert kits[2].path == str(places["user"] / "MyH2" / "drumkit.xml")
    assert kits[3].path == str(places["user"] / "sfzkit" / "808.sfz")


def test_missing_folders_list_only_builtin(tmp_path: Path) -> None:
    assert list_kits(tmp_path / "none", (tmp_path / "no",), (tmp_path / "nope",)) == [KitEntry("builtin", "builtin")]


def test_user_kit_folder_comes_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DARC_BRIDGE_KITS", str(tmp_path))
    assert user_kit_dir() == tmp_path
    monkeypatch.delenv("DARC_BRIDGE_KITS")
    assert user_kit_dir() == Path.home() / ".local/share/darc-bridge/kits"


@pytest.mark.parametrize(("name", "fmt"), [("Rock Kit", "hydrogen"), ("rock kit", "hydrogen"), ("GM", "sf2"),
                                           ("sfzkit", "sfz"), ("builtin", "builtin"), ("", "builtin")])
def test_names_resolve_through_the_list(places, name: str, fmt: str) -> None:
    assert resolve_kit(name, listed(places)).format == fmt


def test_an_earlier_kit_wins_a_shared_name(places) -> None:
    assert resolve_kit("Dusty", listed(places)).format == "folder"


def test_unknown_name_lists_what_there_is(places) -> None:
    with pytest.raises(InputError, match=r"unknown kit 'Jazz'.*builtin, Dusty"):
        resolve_kit("Jazz", listed(places))


@pytest.mark.parametrize(("rel", "fmt"), [("user/Dusty", "folder"), ("user/MyH2", "hydrogen"),
                                          ("user/MyH2/drumkit.xml", "hydrogen"), ("user/sfzkit/808.sfz", "sfz"),
                                          ("user/sfzkit", "sfz"), ("sf2/GM.sf2", "sf2")])
def test_paths_are_recognised_by_format(places, tmp_path: Path, rel: str, fmt: str) -> None:
    assert resolve_kit(str(tmp_path / rel)).format == fmt


def test_a_path_that_is_no_kit_is_refused(places, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a drum kit"):
        kit_at_path(places["sf2"] / "notes.txt")
    with pytest.raises(InputError, match="kit not found"):
        resolve_kit(str(tmp_path / "gone.sfz"))


def test_kits_command_prints_the_list_as_json(places, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DARC_BRIDGE_KITS", str(places["user"]))
    assert main(["kits", "--json"]) == 0
    kits = json.loads(capsys.readouterr().out)
    assert kits[:4] == [
        {"name": "builtin", "format": "builtin", "path": ""},
        {"name": "Dusty", "format": "folder", "path": str(places["user"] / "Dusty")},
        {"name": "My Hydrogen", "format": "hydrogen", "path": str(places["user"] / "MyH2" / "drumkit.xml")},
        {"name": "sfzkit", "format": "sfz", "path": str(places["user"] / "sfzkit" / "808.sfz")},
    ]
    assert all(k["format"] in ("builtin", "folder", "hydrogen", "sfz", "sf2") for k in kits)
    formats = [k["format"] for k in kits[4:]]
    assert formats == sorted(formats, key=("hydrogen", "sf2").index)  # Hydrogen's kits, then SoundFonts


def test_kits_command_prints_one_kit_a_line(places, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DARC_BRIDGE_KITS", str(places["user"]))
    assert main(["kits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["builtin", "builtin"]
    assert lines[1].split() == ["Dusty", "folder", str(places["user"] / "Dusty")]
