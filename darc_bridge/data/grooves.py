"""Drum grooves as a drummer plays them: meters, feels, ghost notes, open hats, fills, crashes, rests.

The first synthetic corpus played one rock beat on eighths, so a model could score well by ignoring
the prompt. Here each song draws a meter, a tempo, a feel (straight, swung, half-time, four on the
floor, syncopated funk, breakbeat) and a hat pattern; bars vary (kick pickups, ghost notes on the
snare, open hats on off-beats), every 4 or 8 bars a fill on snare and toms leads to a crash, and
now and then a bar rests or drops to a sparse break. Hits carry the kit piece and a velocity (the
sample layer), and map to the model's three rhythm classes (low, mid, high).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from darc_bridge.rhythm.features import Onset

# The model's rhythm classes: 0 low (kick), 1 mid (snare, clap, toms), 2 high (hats, cymbals).
PIECE_CLASS = {"kick": 0, "snare": 1, "clap": 1, "tom": 1, "hat": 2, "open_hat": 2, "ride": 2, "crash": 2}
# (beats per bar, sixteenths per beat, weight): 4/4 dominates popular music; 3/4, 6/8 and 5/4 keep
# the model from assuming four beats.
METERS = ((4, 4, 0.6), (3, 4, 0.15), (6, 2, 0.15), (5, 4, 0.1))
FEELS = ("rock", "half_time", "four_floor", "funk", "breakbeat", "shuffle")


@dataclass(frozen=True)
class Hit:
    time: float
    piece: str
    velocity: float  # 0..1

    @property
    def cls(self) -> int:
        return PIECE_CLASS[self.piece]

    def onset(self) -> Onset:
        return Onset(round(self.time, 5), self.cls, round(self.velocity, 3))


@dataclass(frozen=True)
class Groove:
    hits: list[Hit]
    tempo: float
    beats_per_bar: int
    beats: np.ndarray  # beat times (s)
    downbeats: np.ndarray
    feel: str

    def onsets(self) -> list[Onset]:
        """The three-class onsets (the rhythm a prompt plays), hits of one class at one time merged."""
        seen: dict[tuple[float, int], Onset] = {}
        for h in self.hits:
            o = h.onset()
            key = (o.time, o.cls)
            if key not in seen or seen[key].strength < o.strength:
                seen[key] = o
        return sorted(seen.values(), key=lambda o: (o.time, o.cls))


def _pick_meter(rng: np.random.Generator) -> tuple[int, int]:
    w = np.array([m[2] for m in METERS])
    beats, sub, _ = METERS[int(rng.choice(len(METERS), p=w / w.sum()))]
    return beats, sub


def make_groove(rng: np.random.Generator, duration: float, tempo: float | None = None,
                meter: tuple[int, int] | None = None, feel: str | None = None, fills: bool = True,
                rests: bool = True) -> Groove:
    """One song's drums for `duration` seconds: a list of hits with pieces and velocities."""
    beats_per_bar, sub = meter or _pick_meter(rng)
    if sub == 2:  # compound time (6/8): the counted unit is the eighth, so the tempo range is faster
        tempo = tempo or float(rng.uniform(120, 200))
    else:
        tempo = tempo or float(rng.uniform(70, 175))
    feel = feel or str(rng.choice(FEELS))
    step = 60.0 / tempo / sub
    steps_per_bar = beats_per_bar * sub
    swing = float(rng.uniform(0.55, 0.66)) if feel == "shuffle" else 0.5  # share of a pair's first note
    hat_every = int(rng.choice([1, 2])) if sub == 4 and feel != "four_floor" else 2
    hat_piece = "ride" if rng.random() < 0.15 else "hat"
    ghost_p = float(rng.uniform(0.0, 0.25))
    kick_p = float(rng.uniform(0.1, 0.35)) * (1.6 if feel in ("funk", "breakbeat") else 1.0)
    open_p = float(rng.uniform(0.0, 0.5))
    fill_every = int(rng.choice([4, 8]))
    n_bars = int(np.ceil(duration / (steps_per_bar * step))) + 1
    hits: list[Hit] = []

    def t_of(bar: int, s: int) -> float:
        t = (bar * steps_per_bar + s) * step
        if swing != 0.5 and s % 2 == 1:
            t += (swing - 0.5) * 2 * step
        return t

    def add(bar: int, s: int, piece: str, vel: float) -> None:
        t = t_of(bar, s) + float(rng.normal(0, 0.004))
        if 0 <= t < duration:
            hits.append(Hit(max(0.0, t), piece, float(np.clip(vel + rng.normal(0, 0.05), 0.05, 1.0))))

    backbeats = _backbeats(beats_per_bar, sub, feel)
    for bar in range(n_bars):
        fill = fills and bar % fill_every == fill_every - 1
        after_fill = fills and bar > 0 and bar % fill_every == 0
        rest = rests and not fill and bar > 0 and rng.random() < 0.08
        sparse = rests and not fill and not rest and rng.random() < 0.08
        if rest:
            continue  # a bar of silence: the prompt says stop, the model must stop
        fill_from = steps_per_bar - (sub * int(rng.choice([1, 2]))) if fill else steps_per_bar
        for s in range(min(fill_from, steps_per_bar)):
            on_beat = s % sub == 0
            beat = s // sub
            if s == 0 and (after_fill or bar == 0) and rng.random() < 0.8:
                add(bar, 0, "crash", 0.9)
            if feel == "four_floor" and on_beat:
                add(bar, s, "kick", 0.95)
            elif s == 0 or (feel == "rock" and on_beat and beat == beats_per_bar // 2 and sub == 4):
                add(bar, s, "kick", 0.95)
            elif not sparse and s not in backbeats and rng.random() < kick_p * (1.5 if s % 2 == 0 else 0.6):
                add(bar, s, "kick", float(rng.uniform(0.6, 0.9)))
            if s in backbeats and not sparse:
                add(bar, s, "clap" if feel == "four_floor" and rng.random() < 0.5 else "snare", 0.9)
            elif not sparse and rng.random() < ghost_p and s % 2 == 1:
                add(bar, s, "snare", float(rng.uniform(0.15, 0.35)))  # ghost note
            if s % hat_every == 0 and not (sparse and not on_beat):
                offbeat = sub >= 2 and s % sub == sub // 2
                if offbeat and rng.random() < open_p * 0.4:
                    add(bar, s, "open_hat", 0.75)
                else:
                    add(bar, s, hat_piece, 0.8 if on_beat else float(rng.uniform(0.4, 0.65)))
        if fill:
            toms = int(steps_per_bar - fill_from)
            for k, s in enumerate(range(fill_from, steps_per_bar)):
                if rng.random() < 0.85:
                    piece = "snare" if rng.random() < 0.45 else "tom"
                    add(bar, s, piece, 0.5 + 0.45 * k / max(1, toms - 1))
    hits.sort(key=lambda h: (h.time, h.piece))
    beats = np.arange(0.0, duration, step * sub)
    downbeats = beats[::beats_per_bar]
    return Groove(hits, tempo, beats_per_bar, beats, downbeats, feel)


def _backbeats(beats_per_bar: int, sub: int, feel: str) -> set[int]:
    """Sixteenth (or eighth, in 6/8) positions of the snare's backbeat."""
    if sub == 2:  # 6/8: snare on the fourth eighth
        return {beats_per_bar // 2 * sub}
    if feel == "half_time":
        return {(beats_per_bar // 2) * sub}
    if beats_per_bar == 3:
        return {sub, 2 * sub} if feel == "funk" else {sub * 2}
    return {b * sub for b in range(1, beats_per_bar, 2)}
