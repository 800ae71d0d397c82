"""Helpers of the tests that hold our actor-critic agents to stable-baselines3's updates."""

from __future__ import annotations


def copy_sb3_weights(ours, sb3) -> list[tuple]:
    """Load an SB3 ActorCriticPolicy's separate actor and critic MLPs and heads into ours;
    returns the (ours, theirs) module pairs, for comparing them after updates."""
    pairs = [(ours.policy.pi_net, sb3.policy.mlp_extractor.policy_net),
             (ours.policy.vf_net, sb3.policy.mlp_extractor.value_net),
             (ours.policy.action_head, sb3.policy.action_net),
             (ours.policy.value_head, sb3.policy.value_net)]
    for mine, theirs in pairs:
        mine.load_state_dict(theirs.state_dict())
    return pairs
