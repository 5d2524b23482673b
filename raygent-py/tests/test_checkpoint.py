"""raygent.checkpoint: datarax's IteratorCheckpoint / PipelineCheckpoint and
agatha's checkpoint(), on a local directory and on S3."""

from __future__ import annotations

import os

import pytest

import raygent.checkpoint as ck
from raygent.checkpoint import IteratorCheckpoint, ListIterator, PipelineCheckpoint
from raygent.errors import CheckpointError, CheckpointHalt, CheckpointNotFoundError, StepExistsError


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "ckpts")
    bucket = request.getfixturevalue("bucket")
    return f"s3://{bucket}/ckpts"


# --- datarax ---------------------------------------------------------------

def test_save_and_restore_an_iterator(base):
    c = IteratorCheckpoint(base)
    it = ListIterator(list("abcdef"))
    next(it), next(it)
    path = c.save_to_directory(it, step=2, metadata={"epoch": 1, "lr": 0.5, "tag": "a", "ok": True})
    assert path.endswith("step-00000000000000000002")
    if not base.startswith("s3://"):
        assert os.path.isdir(path)
    assert c.get_latest_step() == 2 and c.list_checkpoints() == [2]
    meta = c.get_metadata(2)
    assert {k: meta[k] for k in ("epoch", "lr", "tag", "ok")} == {"epoch": 1, "lr": 0.5, "tag": "a", "ok": True}
    fresh = ListIterator(list("abcdef"))
    assert c.restore(fresh) is fresh
    assert list(fresh) == ["c", "d", "e", "f"]


def test_keep_overwrite_and_restore_a_given_step(base):
    c = IteratorCheckpoint(base)
    it = ListIterator(list(range(10)))
    for step in range(1, 6):
        next(it)
        c.save_to_directory(it, step=step, keep=2)
    assert c.list_checkpoints() == [4, 5]
    with pytest.raises(StepExistsError, match="overwrite=True"):
        c.save_to_directory(it, step=5, keep=2)
    next(it)
    c.save_to_directory(it, step=5, keep=2, overwrite=True)
    assert c.list_checkpoints() == [4, 5]
    at4 = c.restore(ListIterator(list(range(10))), step=4)
    assert next(at4) == 4
    latest = c.restore_latest(ListIterator(list(range(10))))
    assert next(latest) == 6
    # step=None: the step after the newest.
    assert c.save_to_directory(it, keep=3).endswith("step-00000000000000000006")


def test_pipeline_checkpoint_saves_every_interval_steps(base):
    c = PipelineCheckpoint(base)
    it = ListIterator(list(range(100)))
    saved = []
    for step in range(1, 31):
        next(it)
        if c.save_to_step(it, step, interval=10, keep=5, metadata={"step": step}) is not None:
            saved.append(step)
    assert saved == [10, 20, 30] and c.list_checkpoints() == [10, 20, 30]
    assert next(c.restore_latest(ListIterator(list(range(100))))) == 30


def test_async_checkpointing(tmp_path):
    c = IteratorCheckpoint(str(tmp_path / "a"), async_checkpointing=True)
    it = ListIterator(list(range(50)))
    for step in range(10):
        next(it)
        c.save_to_directory(it, step=step, keep=3)
    c.wait_until_finished()
    assert c.list_checkpoints() == [7, 8, 9]


def test_checkpoint_errors(tmp_path):
    c = IteratorCheckpoint(str(tmp_path / "e"))
    with pytest.raises(ValueError, match="no checkpoint to restore"):
        c.restore_latest(ListIterator([1]))
    assert c.get_latest_step() is None
    with pytest.raises(ValueError, match="get_state"):
        c.save_to_directory(object())
    with pytest.raises(ValueError, match="set_state"):
        c.restore(object())
    with pytest.raises(TypeError, match="metadata"):
        c.save_to_directory(ListIterator([1]), step=0, metadata={"bad": [1, 2]})
    with pytest.raises(ValueError, match="keep"):
        c.save_to_directory(ListIterator([1]), step=0, keep=0)
    with pytest.raises(ValueError, match="step 7"):
        c.restore(ListIterator([1]), step=7)
    with pytest.raises(ValueError, match="interval"):
        PipelineCheckpoint(str(tmp_path / "p")).save_to_step(ListIterator([1]), 1, interval=0)
    c.save_to_directory(ListIterator([1, 2]), step=0)
    with pytest.raises(ValueError, match="input of 2 items"):
        c.restore(ListIterator([1, 2, 3]))


# --- agatha ----------------------------------------------------------------

@pytest.fixture
def root(base):
    ck.set_root(base)
    ck.enable()
    ck.clear_halt_point()
    ck.set_allow_partial(False)
    yield base
    ck.enable()
    ck.clear_halt_point()


def counted(log_dir, i):
    """A partition that records each computation of it in log_dir."""
    def compute():
        with open(os.path.join(log_dir, f"computed-{i}-{os.getpid()}-{os.urandom(4).hex()}"), "w"):
            pass
        return [i, i * i, (i, "x")]
    return compute


def computations(log_dir):
    return sorted(int(n.split("-")[1]) for n in os.listdir(log_dir))


def test_checkpoint_computes_once_then_loads(root, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    parts = [counted(str(log), i) for i in range(5)] + [["data", "as is"]]
    first = ck.checkpoint("squares", parts, n_cores=2)
    assert len(first) == 6 and first[1] == [1, 1, (1, "x")] and first[5] == ["data", "as is"]
    assert ck.is_ckpt_done("squares")
    again = ck.checkpoint("squares", parts, n_cores=2)
    assert list(again) == list(first) == [[i, i * i, (i, "x")] for i in range(5)] + [["data", "as is"]]
    assert list(again.elements())[:3] == [0, 0, (0, "x")]
    assert computations(str(log)) == [0, 1, 2, 3, 4]  # computed once each
    assert list(ck.checkpoint("squares")) == list(first)  # load only
    with pytest.raises(CheckpointError, match="holds 6 partitions, not 2"):
        ck.checkpoint("squares", parts[:2])


def test_partitions_are_computed_in_parallel_worker_processes(root, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    ck.checkpoint("par", [counted(str(log), i) for i in range(6)], n_cores=2)
    pids = {n.split("-")[2] for n in os.listdir(log)}
    assert str(os.getpid()) not in pids and len(pids) == 2


def test_unfinished_checkpoint_recomputed_or_resumed_with_allow_partial(root, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    store = ck._store()
    # An earlier run wrote partitions 0 and 2 of 4, then died.
    store.write_partition("stage", 0, ["old0"])
    store.write_partition("stage", 2, ["old2"])
    assert not ck.is_ckpt_done("stage")
    parts = [counted(str(log), i) for i in range(4)]
    got = ck.checkpoint("stage", parts, allow_partial=True, use_ray=False)
    assert list(got) == [["old0"], [1, 1, (1, "x")], ["old2"], [3, 9, (3, "x")]]
    assert computations(str(log)) == [1, 3]
    ck.clear_ckpt("stage")
    assert not ck.is_ckpt_done("stage")
    store.write_partition("stage", 0, ["old0"])
    got = ck.checkpoint("stage", parts, use_ray=False)  # allow_partial off: recomputed in full
    assert got[0] == [0, 0, (0, "x")]
    assert computations(str(log)) == [0, 1, 1, 2, 3, 3]


def test_halt_after(root):
    with pytest.raises(CheckpointHalt) as info:
        ck.checkpoint("a", [[1], [2]], halt_after="a")
    assert info.value.code == 0 and info.value.name == "a"
    assert ck.is_ckpt_done("a")
    ck.set_halt_point("b")
    assert list(ck.checkpoint("a", [[1], [2]])) == [[1], [2]]
    with pytest.raises(SystemExit):
        ck.checkpoint("b", [[3]])


def test_listing_and_clearing(root):
    for name in ("sent_a", "sent_b", "words"):
        ck.checkpoint(name, [[name]])
    names = {os.path.basename(str(p)) for p in ck.get_checkpoints_like("sent_*")}
    assert names == {"sent_a", "sent_b"}
    assert str(ck.get_done_file_path("words")).endswith("words/DONE")
    ck.clear_ckpt("sent_a")
    assert {os.path.basename(str(p)) for p in ck.get_checkpoints_like("*")} == {"sent_b", "words"}
    ck.clear_all_ckpt()
    assert ck.get_checkpoints_like("*") == set()
    with pytest.raises(CheckpointNotFoundError):
        ck.checkpoint("words")


def test_disable_and_enable(root):
    ck.disable()
    try:
        assert ck.checkpoint("off", [lambda: [1, 2], [3]], n_cores=2) == [[1, 2], [3]]
        assert not ck.is_ckpt_done("off")
    finally:
        ck.enable()
    assert list(ck.checkpoint("off", [[9]])) == [[9]]
    assert ck.is_ckpt_done("off")


def test_textfile_returns_none_and_ckpt_replaces_the_variable(root):
    assert ck.checkpoint("text", [["a line", "another"]], textfile=True) is None
    assert list(ck.checkpoint("text")) == [["a line", "another"]]
    global sentences
    sentences = [["s1"], ["s2"]]
    ck.ckpt("sentences")
    assert isinstance(sentences, ck.StageCheckpoint) and list(sentences) == [["s1"], ["s2"]]


def test_agatha_argument_errors(tmp_path):
    with pytest.raises(ValueError):
        ck.set_root("")
    ck.set_root(str(tmp_path / "r"))
    with pytest.raises(ValueError):
        ck.checkpoint("bad/name", [[1]])
    with pytest.raises(TypeError):
        ck.checkpoint("x", 5)
    with pytest.raises(CheckpointNotFoundError):
        ck.checkpoint("never")
