"""Adam that starts at once: torch's fused Adam kernel, without `torch.optim`.

Creating any `torch.optim` optimizer imports `torch._dynamo` (and with it sympy and
parts of torch.distributed): 0.7 s of every `train`'s start-up on a 2-core CPU, for a
compiler that training never uses (docs/benchmarks.md, "Data and start-up"). `FusedAdam`
calls the kernel that `torch.optim.Adam(params, lr, fused=True)` calls, so its updates are
that optimizer's, bit for bit, and its `state_dict` has that optimizer's layout: a
checkpoint written with either loads into the other.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

MOMENTS = ("exp_avg", "exp_avg_sq")


class FusedAdam:
    """Adam (Kingma & Ba, 2015) over `params`, all on one device in one floating dtype,
    with no weight decay and no AMSGrad: one `torch._fused_adam_` call a step.

    `param_groups`: one group, whose `"lr"` may be changed between steps. `state`: per
    parameter that has had a gradient, its step count (a float32 scalar on its device)
    and its moment estimates `exp_avg` and `exp_avg_sq` (its shape).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.param_groups = [
            {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": 0,
                "amsgrad": False,
                "maximize": False,
                "foreach": None,
                "capturable": False,
                "differentiable": False,
                "fused": True,
                "decoupled_weight_decay": False,
                "params": self.params,
            }
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (`set_to_none`), or set it to zero."""
        for param in self.params:
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        group = self.param_groups[0]
        live = [param for param in self.params if param.grad is not None]
        if not live:
            return
        for param in live:
            if param not in self.state:
                self.state[param] = {
                    "step": torch.zeros((), dtype=torch.float32, device=param.device),
                    **{name: torch.zeros_like(param) for name in MOMENTS},
                }
        states = [self.state[param] for param in live]
        steps = [state["step"] for state in states]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            live,
            [param.grad for param in live],
            [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states],
            [],
            steps,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=group["eps"],
            amsgrad=False,
            maximize=False,
        )

    def state_dict(self) -> dict:
        """`{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [group
        with "params" as indices]}`: `torch.optim.Adam`'s layout."""
        index = {param: i for i, param in enumerate(self.params)}
        group = {**self.param_groups[0], "params": list(range(len(self.params)))}
        state = {index[param]: dict(values) for param, values in self.state.items()}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, saved: dict) -> None:
        """Take the rate, betas, eps and per-parameter state of `saved` (this class's or
        `torch.optim.Adam`'s `state_dict`, for the same parameters in the same order);
        ValueError, KeyError or TypeError when it does not fit them."""
        (group,) = saved["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(
                f"the saved optimizer has {len(group['params'])} parameters, "
                f"this model {len(self.params)}"
            )
        if group.get("weight_decay") or group.get("amsgrad") or group.get("maximize"):
            raise ValueError("the saved optimizer is not plain Adam")
        position = {index: i for i, index in enumerate(group["params"])}
        state = {}
        for index, values in saved["state"].items():
            param = self.params[position[index]]
            for name in MOMENTS:
                if values[name].shape != param.shape:
                    raise ValueError(f"a saved {name} has shape {tuple(values[name].shape)}")
            state[param] = {
                "step": values["step"].to(dtype=torch.float32, device=param.device),
                **{name: values[name].to(param) for name in MOMENTS},
            }
        self.state = state
        self.param_groups[0].update(lr=group["lr"], betas=tuple(group["betas"]), eps=group["eps"])
