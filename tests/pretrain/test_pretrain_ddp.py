"""Two gloo processes on the CPU: identical weights on both ranks, and the same result as one
process accumulating the same global batch."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp
from pretrain_helpers import ddp_run_config, ddp_worker, micro_model

from emotion2vec.pretrain import pretrain, read_metrics


def test_two_processes_match_one_process(tmp_path, corpus):
    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(
        ddp_worker,
        args=(2, str(tmp_path / "store"), str(corpus), str(tmp_path / "ddp"), str(out)),
        nprocs=2,
        join=True,
    )
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks differ at {key}"

    # one process, two accumulation steps: the same 2 micro-batches per update
    single = pretrain(ddp_run_config(corpus, update_freq=2), tmp_path / "one", model=micro_model(0))
    state = single.model.state_dict()
    start = micro_model(0).state_dict()
    moved = 0
    for key, value in rank0.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=1e-6, msg=key)
        moved += int(not torch.equal(value, start[key]))
    assert moved > 10, "training did not change the weights"
    ddp_log = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    one_log = read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [r["step"] for r in ddp_log] == [1, 2, 3]
    for a, b in zip(ddp_log, one_log, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5 * abs(b["loss"])
        assert a["epoch"] == b["epoch"]
