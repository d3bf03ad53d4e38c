"""Every planted mistake of tests/mutations.py is caught by a failed assert in the
notebook on its topic (each run takes a notebook's time: this is the suite's slow part)."""
import pytest

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")

import mutations  # noqa: E402

TOPICS = {m.notebook for m in mutations.MUTATIONS}


def test_at_least_ten_mistakes_over_the_topics_the_issue_names():
    assert len(mutations.MUTATIONS) >= 10
    covered = " ".join(f"{m.name} {m.mistake}".lower() for m in mutations.MUTATIONS)
    for topic in ("kl", "sampler", "reparameterisation", "normaliser", "importance",
                  "iwae gradient", "adam", "two-layer", "free bits"):
        assert topic in covered, f"no planted mistake covers {topic!r}"


def test_the_readme_counts_the_mistakes():
    readme = (mutations.REPO / "README.md").read_text()
    assert f"each of the {len(mutations.MUTATIONS)} mistakes in `tests/mutations.py`" in readme


@pytest.mark.parametrize("mutation", mutations.MUTATIONS, ids=[m.name for m in mutations.MUTATIONS])
def test_the_notebook_on_its_topic_catches_the_mistake(mutation):
    caught, what = mutations.run(mutation)
    assert caught, f"{mutation.notebook} did not catch {mutation.mistake}: {what}"
