"""The bench goals: met / not met / undecided from the rows, and the report rewritten from audio.json."""

import json

import pytest

from polydiff.audio.bench import _goals, run


def _rows(vocoder_pesq, espeak_wer):
    rows = []
    for task in ("heldout_sentences", "heldout_voice"):
        rows.append({"task": task, "method": "griffin-lim-60", "peer": True, "pesq": 2.5, "stoi": 0.94,
                     "log_mel_l1": 0.17, "rtf_cpu": 0.3})
        rows.append({"task": task, "method": "PriorGrad-MDCT-6", "peer": False, "pesq": vocoder_pesq,
                     "stoi": 0.95, "log_mel_l1": 0.1, "rtf_cpu": 0.1})
    rows.append({"task": "tts", "method": "eSpeak reference", "peer": True, "wer": espeak_wer, "log_mel_l1": 0.0})
    rows.append({"task": "tts", "method": "Grad-TTS + PriorGrad-MDCT-6", "peer": False, "wer": 0.2,
                 "log_mel_l1": 1.0})
    return rows


@pytest.mark.parametrize("pesq, met", [(3.0, True), (2.0, False)])
def test_vocoder_goal_needs_all_three_metrics(pesq, met):
    goals = _goals(_rows(pesq, 0.1), "PriorGrad-MDCT")
    assert [g["met"] for g in goals[:2]] == [met, met]


@pytest.mark.parametrize("espeak_wer, met", [(0.1, False), (0.2, True), (0.9, None)])
def test_tts_goal_is_undecided_when_the_recogniser_fails_on_the_reference(espeak_wer, met):
    goal = next(g for g in _goals(_rows(3.0, espeak_wer), "PriorGrad-MDCT") if g["goal"].startswith("TTS"))
    assert goal["met"] is met


def test_report_only_rewrites_the_markdown(tmp_path):
    document = {"package": "audio", "quick": True, "seed": 0, "versions": {"torch": "x"},
                "better": {"pesq": "max", "wer": "min"}, "rows": _rows(2.0, 0.9), "preamble": "Budgets: tiny."}
    (tmp_path / "audio.json").write_text(json.dumps(document))
    run(tmp_path, quick=True, argv=["--report-only"])
    text = (tmp_path / "audio.md").read_text()
    assert "**not met** — heldout_sentences" in text and "Budgets: tiny." in text and "**not checked** — TTS" in text
    with pytest.raises(ValueError, match="out"):
        run(tmp_path / "empty", quick=True, argv=["--report-only"])


@pytest.mark.parametrize("pesq, met", [(3.0, True), (2.0, False)])
def test_real_speech_goal_is_judged_from_its_rows_and_unchecked_without_them(pesq, met):
    rows = _rows(3.0, 0.1)
    goal = next(g for g in _goals(rows, "PriorGrad-MDCT") if g["goal"].startswith("real_speech"))
    assert goal["met"] is None and "pysptk" in goal["detail"]
    rows += [{"task": "real_speech", "method": "griffin-lim-60", "peer": True, "pesq": 2.6, "stoi": 0.95,
              "log_mel_l1": 0.1, "rtf_cpu": 0.3, "utterances": 1},
             {"task": "real_speech", "method": "PriorGrad-MDCT-6", "peer": False, "pesq": pesq, "stoi": 0.96,
              "log_mel_l1": 0.09, "rtf_cpu": 0.2, "utterances": 1}]
    goal = next(g for g in _goals(rows, "PriorGrad-MDCT") if g["goal"].startswith("real_speech"))
    assert goal["met"] is met and "arctic_a0007" in goal["detail"]
