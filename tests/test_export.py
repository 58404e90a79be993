"""`agentdistill export`: a run's weights as a plain HF folder that loads back to the same logits (full and
LoRA runs), and its errors (a non-empty target, a run that does not name its model)."""

import json

import pytest
import torch

from agentdistill.algos.common import with_lora
from agentdistill.checkpoints import export_model, save_checkpoint
from agentdistill.cli import main
from agentdistill.config import LoraConfig
from agentdistill.models import TINY_RANDOM, load_model


def _trained_run(tmp_path, lora_rank=0):
    """A run directory holding tiny-random weights moved off their initial values (as training would)."""
    model, tokenizer = load_model(TINY_RANDOM, device="cpu")
    lora = LoraConfig(rank=lora_rank)
    model = with_lora(model, lora)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    run = tmp_path / "run"
    save_checkpoint(run, 3, model, torch.optim.AdamW(model.parameters()), {"data_cursor": 0})
    config = {"model": {"name": TINY_RANDOM}, "lora": {"rank": lora_rank, "alpha": lora.alpha}}
    (run / "run_info.json").write_text(json.dumps({"config": config}))
    ids = tokenizer("<|im_start|>user\ngo north<|im_end|>", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    return run, ids, logits


@pytest.mark.parametrize("lora_rank", [0, 4], ids=["full", "lora"])
def test_exported_weights_give_the_runs_logits(tmp_path, lora_rank):
    run, ids, logits = _trained_run(tmp_path, lora_rank)
    out = export_model(run, tmp_path / "hf")
    exported, _ = load_model(str(out), device="cpu")
    with torch.no_grad():
        again = exported(input_ids=ids).logits
    assert torch.allclose(again, logits, atol=1e-5)
    fresh, _ = load_model(TINY_RANDOM, device="cpu")
    with torch.no_grad():
        assert not torch.allclose(fresh(input_ids=ids).logits, logits, atol=1e-3)  # the training is in it


def test_export_from_the_command_line_and_its_errors(tmp_path, capsys):
    run, ids, logits = _trained_run(tmp_path)
    main(["export", str(run / "checkpoints" / "step_000003"), str(tmp_path / "hf")])
    assert "model.name=" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not empty"):
        main(["export", str(run), str(tmp_path / "hf")])
    (run / "run_info.json").unlink()
    with pytest.raises(SystemExit, match="--model NAME"):
        main(["export", str(run), str(tmp_path / "hf2")])
    main(["export", str(run), str(tmp_path / "hf2"), "--model", TINY_RANDOM])
    assert (tmp_path / "hf2" / "config.json").exists()
