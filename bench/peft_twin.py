"""PEFT twin of bench/lora.ts: loads what orpo-ts wrote with Python transformers + peft and compares.

For each case folder: PeftModel.from_pretrained(base, adapter) must give orpo-ts's logits of base + adapter, and
PEFT's merge_and_unload() weights must equal the folder `orpo merge` wrote. Prints one line per check and exits 1
on any mismatch.  Usage: python3 bench/peft_twin.py bench/out/peft
"""
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main(root: str) -> int:
    failures = 0
    for name in sorted(os.listdir(root)):
        case = os.path.join(root, name)
        expected = json.load(open(os.path.join(case, "expected.json")))
        base = AutoModelForCausalLM.from_pretrained(os.path.join(case, "base"), torch_dtype=torch.float32)
        model = PeftModel.from_pretrained(base, os.path.join(case, "adapter"))
        model.eval()
        ids = torch.tensor([expected["ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0].reshape(-1)
            with model.disable_adapter():
                plain = model(ids).logits[0].reshape(-1)
        want = torch.tensor(expected["logits"])
        err = (logits - want).abs().max().item()
        # the adapter must matter, or agreeing with orpo-ts would prove nothing
        effect = (plain - want).abs().max().item()
        ok = err <= 1e-4 and effect > 1e-3
        failures += not ok
        print(f"{name}: PEFT logits of base + orpo-ts adapter vs orpo-ts: max |diff| {err:.2e} (adapter's effect {effect:.2e}) "
              f"{'ok' if ok else 'MISMATCH'}")
        merged = model.merge_and_unload().state_dict()
        ours = load_file(os.path.join(case, "merged", "model.safetensors"))
        worst = 0.0
        for key, tensor in ours.items():
            if key not in merged:
                print(f"{name}: merged tensor {key} unknown to transformers")
                failures += 1
                continue
            worst = max(worst, (merged[key].float() - tensor.float()).abs().max().item())
        ok = worst <= 1e-5
        failures += not ok
        print(f"{name}: PEFT merge_and_unload vs orpo merge: max |diff| {worst:.2e} over {len(ours)} tensors {'ok' if ok else 'MISMATCH'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
