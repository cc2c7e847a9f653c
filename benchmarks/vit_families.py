"""Benchmark of the transformer families; prints one JSON object.

Known answers under the cost models (whole model, 1000 classes unless stated): DeiT-T/S/B, the
ReViT rule against the paper's figures (Yang et al., CVPR 2023, Table 6), TinyViT 5M/11M/21M
(Wu et al., ECCV 2022), MCi0/1/2 in training and reparameterised form (timm's ``fastvit_mci*``,
512-d projection head, 256 px), and the STViT DeiT-S layout's MAC reduction (Chang et al., CVPR
2023). Then one solve per transformer space at its default budget (and TinyViT / MCi at each
published model's exact costs): status, score, bound, gap, solve time, and the best design's costs.
Usage: ``python benchmarks/vit_families.py [--time-limit S]``. Torch is not imported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-limit", type=float, default=30.0)
    args = parser.parse_args()

    from archsearch import cost
    from archsearch.cost import paper_macs
    from archsearch.solvers import get_solver
    from archsearch.space import (
        DEIT, MCI_TEMPLATES, TINYVIT_5M, TINYVIT_11M, TINYVIT_21M, STViTSpec, Budget, ViTSpec, get_space, mci_template,
    )
    from archsearch.space.vit_templates import revit_spec

    whole = lambda spec: {"params": cost.params(spec, with_head=True), "macs": cost.macs(spec, with_head=True)}  # noqa: E731
    out: dict = {"known": {}, "solves": []}
    out["known"]["deit"] = {name: whole(ViTSpec.uniform(**dims)) for name, dims in DEIT.items()}
    revit = {}
    for label, emb, paper in (("revit_s", 384, (23e6, 4.7e9)), ("revit_t", 176, (5.9e6, 1.3e9))):
        for variant, kw in (("literal", {}), ("end_heads_10", {"end_heads": 10})):
            c = whole(revit_spec(emb, **kw))
            revit[f"{label}_{variant}"] = {**c, "paper_params": paper[0], "paper_macs": paper[1],
                                           "params_vs_paper": c["params"] / paper[0] - 1, "macs_vs_paper": c["macs"] / paper[1] - 1}
    out["known"]["revit"] = revit
    out["known"]["tinyvit"] = {s.name or k: whole(s) for k, s in (("5m", TINYVIT_5M), ("11m", TINYVIT_11M), ("21m", TINYVIT_21M))}
    out["known"]["mci"] = {name: {"training": whole(mci_template(name)), "reparameterized": whole(mci_template(name, reparameterized=True))}
                           for name in MCI_TEMPLATES}
    stvit = STViTSpec.from_deit("deit_small")
    deit_s = ViTSpec.uniform(**DEIT["deit_small"])
    formula = 1 - paper_macs(embed_dim=384, tokens=196, semantic_layer=4, num_semantic=16, semantic_layers=2) / paper_macs(embed_dim=384, tokens=196)
    out["known"]["stvit_deit_s_reduction"] = {"papers_formula": formula,
                                              "exact_cost_model": 1 - cost.macs(stvit, with_head=True) / cost.macs(deit_s, with_head=True)}

    jobs = [(name, None, {}) for name in ("revit", "revit-ref", "revit-t", "nvit", "stvit", "stvit-tiny", "stvit-base", "tinyvit", "tinyvit-depth", "mci")]
    jobs.append(("nvit", None, {"priors": False}))
    for label, spec in (("tinyvit_5m", TINYVIT_5M), ("tinyvit_11m", TINYVIT_11M)):
        c = whole(spec)
        jobs.append(("tinyvit", Budget(params=c["params"], macs=c["macs"]), {"label": label}))
    for name in MCI_TEMPLATES:
        c = whole(mci_template(name))
        jobs.append(("mci", Budget(params=c["params"], macs=c["macs"]), {"label": name}))
    for name, budget, options in jobs:
        space = get_space(name)
        budget = budget or space.budget
        label = options.pop("label", None)
        solver = get_solver(space.solver)(time_limit=args.time_limit)
        t = time.perf_counter()
        res = solver.solve(space, budget, top_k=1, **options)
        wall = time.perf_counter() - t
        best = res.best
        out["solves"].append({
            "space": name, "label": label, "options": options, "budget": budget.to_text(), "status": res.status,
            "solve_time_s": round(wall, 3), "score": best.score if best else None, "bound": res.bound, "gap": res.gap,
            "macs": best.macs if best else None, "params": best.params if best else None,
            "spec": best.spec.to_dict() if best else None,
        })
    out["torch_imported"] = "torch" in sys.modules
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
