import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A tiny eSpeak NG corpus (about 20 s of speech) shared by the tests."""
    from polydiff.audio.data import make_corpus

    out = tmp_path_factory.mktemp("corpus") / "espeak"
    return make_corpus(out, hours=0.005, voices=["en-us+m1", "en+f3"], heldout_voices=["en-gb-x-rp+f4"],
                       test_sentences=2, seed=0)
