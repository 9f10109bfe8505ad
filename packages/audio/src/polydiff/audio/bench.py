"""``polydiff bench audio [--quick] --out DIR``: the shipped vocoders against Griffin-Lim, and Grad-TTS against
the eSpeak reference, on held-out speech.

Data: the held-out sentences of the shipped models' training corpus, rebuilt offline with eSpeak NG (same hours
and seed, only the test splits synthesised; the bench checks that none of them is a training sentence): task
``heldout_sentences`` (training voices) and ``heldout_voice`` (a voice never trained on).
Rows per task: Griffin-Lim 32 / 60 iterations (peers), then every shipped diffusion vocoder at 6 / 12 / 50 steps
(``--quick``: the default vocoder at 6 / 12, the others at 6), with the core solver ``--solver`` (copy synthesis from the reference's mel). Metrics: pesq (PESQ-WB), stoi,
log_mel_l1, mrstft, mcd, rtf (wall time / audio time, one process, torch threads = POLYDIFF_THREADS or 1).
Task ``real_speech``: the same rows on recorded speech: one CMU ARCTIC utterance (arctic_a0007, a male US
English speaker, 16 kHz, free for any use) that ships inside the ``pysptk`` sdist (an optional bench dependency;
the task is skipped when it is not installed; nothing is downloaded).
TTS task: Grad-TTS + the shipped vocoder, Grad-TTS + Griffin-Lim 60, and the eSpeak reference itself: wer
(pocketsphinx's US English model) and log_mel_l1 against the eSpeak reference after DTW alignment of the frames.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from .evaluate import BETTER, speech_metrics, transcribe, word_error_rate, write_bigram_lm
from .mel import mel_spectrogram, resample

__all__ = ["run", "budgets"]

STEPS = (6, 12, 50)


def budgets(quick: bool) -> dict:
    return {"utterances": 1 if quick else 5, "tts_sentences": 1 if quick else 16,
            "steps": STEPS[:2] if quick else STEPS, "other_steps": STEPS[:1] if quick else STEPS,
            "griffin_lim": (32, 60)}


def _parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="polydiff bench audio", description=__doc__.split("\n\n")[0])
    parser.add_argument("--solver", default="dpmpp_2m", help="core solver of the diffusion rows (default dpmpp_2m)")
    parser.add_argument("--utterances", type=int, default=None, help="utterances per task (default 5, quick 1)")
    parser.add_argument("--corpus", default=None,
                        help="a corpus folder to evaluate on instead (its test splits; LJSpeech layout works)")
    parser.add_argument("--no-tts", action="store_true", help="skip the TTS rows")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite audio.md (goals and table) from the audio.json already in --out; runs nothing")
    return parser.parse_args(list(argv or []))


def real_speech() -> list:
    """Recorded speech that ships with installed packages: utterance-like records (``id``, ``path``);
    today the CMU ARCTIC utterance arctic_a0007 inside ``pysptk`` (located without importing pysptk)."""
    from importlib.metadata import PackageNotFoundError, distribution
    from types import SimpleNamespace

    try:
        path = Path(distribution("pysptk").locate_file("pysptk/example_audio_data/arctic_a0007.wav"))
    except PackageNotFoundError:
        return []
    return [SimpleNamespace(id="arctic_a0007", path=path)] if path.is_file() else []


def _heldout_corpus(folder: Path, vocoder_folder: Path, limit: int) -> Path:
    from polydiff.core.pretrained import read_config

    from .data import make_corpus

    corpus = read_config(vocoder_folder).get("metadata", {}).get("corpus_config", {})
    return make_corpus(folder, hours=corpus.get("hours", 0.6), test_sentences=corpus.get("test_sentences", 40),
                       seed=corpus.get("seed", 0), splits=("test", "test_voice"), force=True, limit=limit)


def _dtw_l1(reference_mel: torch.Tensor, estimate_mel: torch.Tensor) -> float:
    import librosa

    a, b = reference_mel.numpy(), estimate_mel.numpy()
    _, path = librosa.sequence.dtw(X=a, Y=b, metric="cityblock")
    return float(np.abs(a[:, path[:, 0]] - b[:, path[:, 1]]).mean())


def _spectrogram_figure(path: Path, panels: list[tuple[str, np.ndarray]], config) -> None:
    from polydiff.core.optional import require

    require("matplotlib", "polydiff-audio[bench]", "the figures of polydiff bench audio")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.6 * len(panels)), sharex=True)
    for axis, (title, wave) in zip(np.atleast_1d(axes), panels, strict=True):
        axis.imshow(mel_spectrogram(torch.from_numpy(wave), config).numpy(), origin="lower", aspect="auto",
                    vmin=-11.5, vmax=2, cmap="magma")
        axis.set_title(title, fontsize=8)
        axis.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(out_dir, *, quick: bool = False, seed: int = 0, argv=None) -> dict:
    """Run the benchmark; write ``out_dir/audio.json``, ``audio.md``, a spectrogram figure and WAV examples."""
    from polydiff.core.benchkit import versions, write_report

    from .data import load_corpus, read_wav, write_wav
    from .peers import griffin_lim
    from .pretrained import SHIPPED, WEIGHTS, load_tts, load_vocoder, shipped_vocoders

    torch.set_num_threads(int(os.environ.get("POLYDIFF_THREADS", "1")))
    args = _parse(argv)
    if args.report_only:
        return _rewrite_report(Path(out_dir))
    budget = budgets(quick)
    count = args.utterances or budget["utterances"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = {"stft": "PriorSTFT", "spectral": "PriorGrad-MDCT", "priorgrad": "PriorGrad", "diffwave": "DiffWave"}
    shipped = shipped_vocoders()
    if not shipped:
        raise ValueError("polydiff-audio ships no vocoder weights: nothing to benchmark")
    vocoders = {labels[name]: load_vocoder(name) for name in shipped}
    from polydiff.core.pretrained import read_config

    train_steps = {labels[name]: read_config(WEIGHTS / SHIPPED[name]).get("metadata", {}).get("steps")
                   for name in shipped}
    main = labels[shipped[0]]
    config = vocoders[main].mel_config
    if any(v.mel_config != config for v in vocoders.values()):
        raise ValueError("the shipped vocoders use different MelConfigs")
    with tempfile.TemporaryDirectory() as scratch:
        if args.corpus:
            corpus = Path(args.corpus)
        else:
            print("[audio] rebuilding the held-out sentences with eSpeak NG", flush=True)
            corpus = _heldout_corpus(Path(scratch) / "heldout", WEIGHTS / SHIPPED[shipped[0]],
                                     max(count, budget["tts_sentences"]))
            meta = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
            leaked = set(meta["train_sentences"]) & {u.text for u in load_corpus(corpus)}
            if leaked:
                raise RuntimeError(f"held-out sentences overlap the training sentences: {sorted(leaked)[:3]}")
        tasks = {"heldout_sentences": load_corpus(corpus, "test")[:count],
                 "heldout_voice": load_corpus(corpus, "test_voice")[:count], "real_speech": real_speech()}
        rows, examples = [], {}
        warm = torch.full((config.n_mels, 12), -4.0)  # first calls pay imports and JIT compiles: not timed
        griffin_lim(warm, config, n_iter=2)
        for vocoder in vocoders.values():
            vocoder.vocode(warm, steps=2, solver=args.solver)
        for task, utterances in tasks.items():
            if not utterances:
                continue
            methods = [(f"griffin-lim-{n}", True, "gl", n) for n in budget["griffin_lim"]]
            methods += [(f"{name}-{steps}", False, name, steps) for name in vocoders
                        for steps in (budget["steps"] if name == main else budget["other_steps"])]
            if quick and task == "real_speech":  # --quick: the goal's two rows only
                methods = [m for m in methods if m[0] in ("griffin-lim-60", f"{main}-6")]
            for label, peer, kind, amount in methods:
                scores, seconds, elapsed, cpu = [], 0.0, 0.0, 0.0
                for index, utterance in enumerate(utterances):
                    wave, rate = read_wav(utterance.path)
                    mel = vocoders[main].mel(wave, rate)
                    reference = wave if rate == config.sample_rate else resample(wave, rate,
                                                                                 config.sample_rate).numpy()
                    start, cpu_start = time.perf_counter(), time.process_time()
                    if kind == "gl":
                        estimate = griffin_lim(mel, config, n_iter=amount, seed=seed)
                    else:
                        estimate = vocoders[kind].vocode(mel, steps=amount, solver=args.solver, seed=seed)
                    elapsed += time.perf_counter() - start
                    cpu += time.process_time() - cpu_start
                    seconds += estimate.shape[0] / config.sample_rate
                    scores.append(speech_metrics(reference, estimate, config))
                    if index == 0 and task == "heldout_sentences":
                        examples[label] = estimate
                        examples["reference"] = reference[: estimate.shape[0]]
                    if task == "real_speech":
                        examples[f"real-{label}"] = estimate
                        examples["real-reference"] = reference[: estimate.shape[0]]
                row = {"task": task, "method": label, "peer": peer,
                       **{k: float(np.mean([s[k] for s in scores])) for k in scores[0]},
                       "rtf": elapsed / seconds, "rtf_cpu": cpu / seconds, "utterances": len(utterances),
                       "train_steps": train_steps.get(kind)}
                print(f"[audio] {task} / {label}: " + ", ".join(f"{k} {row[k]:.3f}" for k in
                                                                   ("pesq", "stoi", "log_mel_l1", "rtf", "rtf_cpu")), flush=True)
                rows.append(row)
        tts_note = ""
        if not args.no_tts and (WEIGHTS / SHIPPED["tts"] / "config.json").is_file():
            pipeline = load_tts(vocoder=vocoders[main])
            language_model = None  # the recogniser's language model: the corpus' word list and training bigrams
            train_sentences = (json.loads((corpus / "corpus.json").read_text(encoding="utf-8")).get("train_sentences")
                               if (corpus / "corpus.json").is_file() else None)
            if train_sentences:
                from .text import vocabulary

                language_model = write_bigram_lm(Path(scratch) / "corpus-bigram.lm", train_sentences, vocabulary())
            sentences = tasks["heldout_sentences"][: budget["tts_sentences"]]
            references = [t.text for t in sentences]
            tts_label = f"Grad-TTS + {main}-6"
            mean_label = f"Grad-TTS encoder mean only + {main}-6"  # diagnostic: mu, no diffusion decoder
            outputs: dict[str, list] = {"eSpeak reference": [], tts_label: [], "Grad-TTS + griffin-lim-60": [],
                                        mean_label: []}
            l1: dict[str, list] = {k: [] for k in outputs}
            times = {k: 0.0 for k in outputs}
            cpu_times = {k: 0.0 for k in outputs}
            audio_seconds = {k: 0.0 for k in outputs}
            for utterance in sentences:
                wave, rate = read_wav(utterance.path)
                reference_mel = pipeline.vocoder.mel(wave, rate)
                start, cpu_start = time.perf_counter(), time.process_time()
                mel = pipeline.mel(utterance.text, seed=seed)
                mel_time, mel_cpu = time.perf_counter() - start, time.process_time() - cpu_start
                start, cpu_start = time.perf_counter(), time.process_time()
                if rate != config.sample_rate:
                    wave = resample(wave, rate, config.sample_rate).numpy()
                synthesized = {"eSpeak reference": wave,
                               tts_label: pipeline.vocoder.vocode(mel, steps=6, seed=seed)}
                times[tts_label] += mel_time + time.perf_counter() - start
                cpu_times[tts_label] += mel_cpu + time.process_time() - cpu_start
                start, cpu_start = time.perf_counter(), time.process_time()
                synthesized["Grad-TTS + griffin-lim-60"] = griffin_lim(mel, config, n_iter=60, seed=seed)
                times["Grad-TTS + griffin-lim-60"] += mel_time + time.perf_counter() - start
                cpu_times["Grad-TTS + griffin-lim-60"] += mel_cpu + time.process_time() - cpu_start
                start, cpu_start = time.perf_counter(), time.process_time()
                synthesized[mean_label] = pipeline.vocoder.vocode(pipeline.mel(utterance.text, steps=0, seed=seed),
                                                                  steps=6, seed=seed)
                times[mean_label] += time.perf_counter() - start
                cpu_times[mean_label] += time.process_time() - cpu_start
                for name, audio in synthesized.items():
                    outputs[name].append(transcribe(audio, config.sample_rate, language_model))
                    l1[name].append(_dtw_l1(reference_mel, pipeline.vocoder.mel(audio, config.sample_rate)))
                    audio_seconds[name] += audio.shape[0] / config.sample_rate
                examples.setdefault("tts", synthesized[tts_label])
            for name in outputs:
                row = {"task": "tts", "method": name, "peer": name == "eSpeak reference",
                       "wer": word_error_rate(references, outputs[name]), "log_mel_l1": float(np.mean(l1[name])),
                       "utterances": len(sentences)}
                if times[name]:
                    row["rtf"] = times[name] / audio_seconds[name]
                    row["rtf_cpu"] = cpu_times[name] / audio_seconds[name]
                print(f"[audio] tts / {name}: wer {row['wer']:.3f}, log_mel_l1 {row['log_mel_l1']:.3f}", flush=True)
                rows.append(row)
            tts_note = ("TTS log_mel_l1 is measured against the eSpeak recording of the same sentence after DTW "
                        "alignment of the mel frames (the eSpeak row is 0 by construction). TTS wer: pocketsphinx's "
                        "US English acoustic model with a bigram language model over the corpus' word list and its "
                        "training sentences (never the held-out ones), the same for every row. The row 'encoder "
                        "mean only' vocodes Grad-TTS's mu without the diffusion decoder: a diagnostic of what the "
                        "decoder adds, not a shipped setting."
                        if language_model else "TTS wer: pocketsphinx's US English model and its general language "
                        "model.")
    figures = []
    try:
        names = ["reference", "griffin-lim-60", f"{main}-6", f"{main}-50", "tts", "real-reference",
                 f"real-{main}-6"]
        panels = [(name, examples[name]) for name in names if name in examples]
        _spectrogram_figure(out / "audio-spectrograms.png", panels, config)
        figures.append("audio-spectrograms.png")
    except ImportError as error:
        print(f"[audio] no figure: {error}", flush=True)
    # the recording itself is not copied out (it ships with pysptk under CMU's notice); its resyntheses are
    for name in ("reference", "griffin-lim-60", f"{main}-6", f"{main}-50", "tts", "real-griffin-lim-60",
                 f"real-{main}-6"):
        if name in examples:
            write_wav(out / f"audio-{name.lower()}.wav", examples[name], config.sample_rate)
    goals = _goals(rows, main)
    real = bool(tasks.get("real_speech"))
    preamble = "\n".join([
        "Copy synthesis on held-out speech: each row vocodes the mel of an eSpeak NG recording it never trained on "
        "and is scored against that recording. Sentences: the held-out split of the training corpus, rebuilt; the "
        "heldout_voice task uses a voice absent from training. " + (
            "real_speech: one recorded utterance (CMU ARCTIC arctic_a0007, male US English, 16 kHz, as shipped "
            "inside the pysptk sdist): a single utterance, not a test set." if real else
            "real_speech: not run (pysptk, whose sdist ships the recording, is not installed)."),
        f"Budgets: {count} utterance(s) per copy-synthesis task, {budget['tts_sentences']} sentence(s) for the TTS "
        f"rows; diffusion rows use the core solver `{args.solver}` with the "
        f"shipped fitted grid where one exists; Griffin-Lim is librosa's fast Griffin-Lim (momentum 0.99) from an "
        f"NNLS inverse of the mel. rtf: wall time / audio time, one process, torch threads "
        f"{torch.get_num_threads()}, on a shared machine (other jobs running); rtf_cpu: the process's CPU time / "
        "audio time, which the other jobs do not inflate (the RTF targets are judged on it).",
        tts_note])
    better = {**{k: BETTER[k] for k in ("pesq", "stoi", "log_mel_l1", "mrstft", "mcd", "rtf", "rtf_cpu", "wer")},
              "train_steps": None}
    return write_report(out, "audio", quick=quick, seed=seed,
                        versions=versions(["torch", "torchaudio", "librosa", "pesq", "pystoi", "pocketsphinx",
                                           "espeakng-loader", "polydiff-core", "polydiff-audio"]),
                        better=better, rows=rows, title="polydiff-audio: diffusion vocoders and Grad-TTS",
                        preamble=preamble, figures=figures, goals=goals,
                        extra={"budget": budget, "preamble": preamble})


def _rewrite_report(out: Path) -> dict:
    """Render audio.md again from audio.json (the stored rows, preamble, budget and figures)."""
    from polydiff.core.benchkit import write_report

    path = out / "audio.json"
    if not path.is_file():
        raise ValueError(f"out: no audio.json in {str(out)!r} to rewrite the report from")
    document = json.loads(path.read_text(encoding="utf-8"))
    rows = document["rows"]
    main = next(r["method"].rsplit("-", 1)[0] for r in rows if r["task"] != "tts" and not r["peer"])
    extra = {k: v for k, v in document.items() if k not in ("package", "quick", "seed", "versions", "better",
                                                             "rows", "goals")}
    figures = [p.name for p in sorted(out.glob("audio-*.png"))]
    return write_report(out, "audio", quick=document["quick"], seed=document["seed"], versions=document["versions"],
                        better=document["better"], rows=rows, title="polydiff-audio: diffusion vocoders and Grad-TTS",
                        preamble=extra.pop("preamble", ""), figures=figures, goals=_goals(rows, main), extra=extra)


def _goals(rows: list[dict], main: str) -> list[dict]:
    from polydiff.core.benchkit import goal

    def pick(task, method):
        return next((r for r in rows if r["task"] == task and r["method"] == method), None)

    goals = []
    for task in ("heldout_sentences", "heldout_voice", "real_speech"):
        gl = pick(task, "griffin-lim-60")
        candidates = [r for r in rows if r["task"] == task and r["method"].startswith(main + "-") and
                      r.get("rtf_cpu", 1e9) <= 0.5]
        if gl is None:
            if task == "real_speech":
                goals.append(goal("real_speech: the same on real recorded speech", None,
                                  "not measured: pysptk (whose sdist ships the one recorded utterance used) is not "
                                  "installed, and nothing is downloaded", "issue 13 target"))
            continue
        best = max(candidates, key=lambda r: r["pesq"]) if candidates else None
        if best is None:
            fastest = min((r for r in rows if r["task"] == task and r["method"].startswith(main + "-")),
                          key=lambda r: r["rtf_cpu"], default=None)
            detail = (f"no {main} row ran at CPU RTF <= 0.5" + (f" (fastest: {fastest['method']} CPU RTF "
                                                                   f"{fastest['rtf_cpu']:.2f})" if fastest else ""))
            met = False
        else:
            met = best["pesq"] > gl["pesq"] and best["stoi"] > gl["stoi"] and best["log_mel_l1"] < gl["log_mel_l1"]
            detail = (f"{best['method']}: PESQ {best['pesq']:.2f} vs {gl['pesq']:.2f}, STOI {best['stoi']:.3f} vs "
                      f"{gl['stoi']:.3f}, log-mel L1 {best['log_mel_l1']:.3f} vs {gl['log_mel_l1']:.3f}, CPU RTF "
                      f"{best['rtf_cpu']:.2f}")
        if task == "real_speech":
            detail += " (one recorded utterance: CMU ARCTIC arctic_a0007)"
        goals.append(goal(f"{task}: the shipped vocoder beats Griffin-Lim-60 on PESQ-WB, STOI and log-mel L1 at "
                          "RTF <= 0.5", met, detail, "issue 13 target; Griffin-Lim-60 measured in this run"))
    espeak, tts = pick("tts", "eSpeak reference"), pick("tts", f"Grad-TTS + {main}-6")
    if espeak and tts:
        detail = (f"Grad-TTS + {main}-6 WER {tts['wer']:.3f} vs eSpeak {espeak['wer']:.3f} "
                  f"(limit {1.5 * espeak['wer']:.3f})")
        if 1.5 * espeak["wer"] >= 1.0:  # silence scores WER 1: a limit at or above 1 cannot tell speech from noise
            met = None
            detail += ("; undecided: the recogniser misses so many words of the eSpeak reference itself that 1.5x "
                       "its WER is at least 1, the WER of an empty transcript")
        else:
            met = tts["wer"] <= 1.5 * espeak["wer"]
        goals.append(goal("TTS WER within 1.5x the eSpeak reference's WER", met, detail,
                          "issue 13 target; both measured in this run"))
    goals.append(goal("reference numbers from elsewhere", None,
                      "Griffin-Lim-60 PESQ-WB 3.04, STOI .965, log-mel L1 .211, RTF .09 (an earlier measurement on "
                      "eSpeak speech); DiffWave MOS 4.44, FastDiff 4 steps MOS 4.28 (GPU, LJSpeech)",
                      "issue 13; Kong et al. 2021; Huang et al. 2022"))
    return goals
