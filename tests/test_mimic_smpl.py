"""MimicEnv with the SMPL character: PD gains, kinematic playback, shapes (betas), RSI, early
termination, Gymnasium/SB3 API checks, random steps and rendering."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless rendering

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from _mimic_checks import check_rsi, ghost_coverage, random_rollout_episodes

import mimicgym.envs  # noqa: F401  (registers the ids)
from mimicgym.envs.mimic.env import MimicEnv
from mimicgym.envs.mimic.factory import make_character
from mimicgym.motion.clip_library import make_clip

# The issue's SMPL gains (SMPLSim/ProtoMotions), written out independently of the builder.
ISSUE_GAINS = {
    "hip": (800, 80), "knee": (800, 80), "ankle": (800, 80), "foot": (500, 50),
    "spine1": (1000, 100), "spine2": (1000, 100), "spine3": (1000, 100),
    "neck": (500, 50), "head": (500, 50), "collar": (500, 50), "shoulder": (500, 50),
    "elbow": (500, 50), "wrist": (300, 30), "hand": (300, 30),
}  # fmt: skip
FEET = ("left_ankle", "right_ankle", "left_foot", "right_foot")
ZERO = np.zeros(69, dtype=np.float32)


@pytest.fixture(scope="module")
def smpl():
    return make_character("smpl")


@pytest.fixture(scope="module")
def walk_env():
    env = MimicEnv(clip=make_clip("walk"), character="smpl")
    yield env
    env.close()


def _body(m: mujoco.MjModel, name: str) -> int:
    return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)


def _lowest_sole(env: MimicEnv, qpos: np.ndarray) -> np.ndarray:
    """(T,) height of the lowest corner of the four foot boxes for each qpos row."""
    m, d = env.model, mujoco.MjData(env.model)
    ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n) for n in FEET]
    corners = np.stack(np.meshgrid([-1, 1], [-1, 1], [-1, 1]), -1).reshape(-1, 3)  # (8, 3)
    out = np.empty(len(qpos))
    for t, q in enumerate(qpos):
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        local = corners[None] * m.geom_size[ids][:, None]  # (4, 8, 3)
        rot_t = d.geom_xmat[ids].reshape(-1, 3, 3).transpose(0, 2, 1)  # (4, 3, 3) R^T
        world = d.geom_xpos[ids][:, None] + local @ rot_t
        out[t] = world[..., 2].min()
    return out


def test_smpl_character_pd_actuators_with_issue_gains_and_torque_limit(smpl):
    m = smpl.model
    assert m.nu == 69 and m.nbody - 1 == 24 and len(smpl.actuated_dofs) == 69 == m.nv - 6
    assert m.opt.timestep == pytest.approx(1 / 600)
    for j in smpl.joints[1:]:
        kp, kd = ISSUE_GAINS[j.name.removeprefix("left_").removeprefix("right_")]
        jid = m.body_jntadr[_body(m, j.name)]
        assert m.jnt_type[jid] == mujoco.mjtJoint.mjJNT_BALL
        assert (j.kp, j.kd, j.torque_limit) == (kp, kd, 500.0)
        acts = np.flatnonzero(m.actuator_trnid[:, 0] == jid)  # x, y, z about the joint
        assert len(acts) == 3
        np.testing.assert_array_equal(m.actuator_gainprm[acts, 0], kp)
        np.testing.assert_array_equal(m.actuator_biasprm[acts, 1:3], [[-kp, -kd]] * 3)
        np.testing.assert_array_equal(m.actuator_forcerange[acts], [[-500.0, 500.0]] * 3)
        np.testing.assert_array_equal(m.actuator_gear[acts, :3], np.eye(3))
    # The PD law on the rotation vector: a target 0.1 rad about x at rest -> kp * 0.1 on that
    # axis only; 1 rad asks for 800 N m, clipped to the 500 N m limit.
    d = mujoco.MjData(m)
    knee = m.body_jntadr[_body(m, "left_knee")]
    act = np.flatnonzero(m.actuator_trnid[:, 0] == knee)[0]
    dof = list(smpl.actuated_dofs).index(m.jnt_dofadr[knee])
    assert dof == act  # action index = actuator index = position in actuated_dofs
    for target, torque in ((0.1, 800 * 0.1), (1.0, 500.0)):
        d.ctrl[:] = smpl.pd_targets(m.qpos0)[0]
        d.ctrl[act] = target
        mujoco.mj_forward(m, d)
        np.testing.assert_allclose(d.actuator_force[act:act + 3], [torque, 0.0, 0.0], atol=1e-9)
        assert np.count_nonzero(np.abs(d.actuator_force) > 1e-9) == 1
    # Pose weights: one per joint (on each of its 3 rotational dofs), summing to 1 over joints,
    # DeepMimic's humanoid3d ratios where SMPL has the same joint (hip 0.5, knee 0.3 : root 1).
    first_rot = m.jnt_dofadr[m.body_jntadr[smpl.body_ids]] + np.r_[3, np.zeros(23, int)]
    w = dict(zip([j.name for j in smpl.joints], smpl.dof_pose_weight[first_rot]))
    assert smpl.dof_pose_weight.sum() == pytest.approx(3.0) and sum(w.values()) == pytest.approx(1)
    assert (w["left_hip"] / w["pelvis"], w["right_knee"] / w["pelvis"]) == pytest.approx((0.5, 0.3))
    assert sum(w[f"spine{i}"] for i in (1, 2, 3)) / w["pelvis"] == pytest.approx(0.5)  # chest's
    assert {smpl.joints[i].name for i in smpl.end_effector_index} == {
        "left_ankle", "right_ankle", "left_wrist", "right_wrist"}


@pytest.mark.parametrize("clip", ["walk", "jumping_jacks"])
def test_kinematic_playback_gives_unit_reward_terms(clip, walk_env):
    env = walk_env if clip == "walk" else MimicEnv(clip=make_clip(clip), character="smpl")
    env.reset(seed=0)
    for k in range(0, 3 * env.ref.n, env.substeps):  # three cycles, crossing the wrap
        env.set_state_to_reference(k)
        np.testing.assert_allclose(env.imitation_terms(), 1.0, atol=1e-6)
    # Stepping the env, then putting the state on the reference, gives 1 too.
    env.reset(seed=1)
    env.step(ZERO)
    env.set_state_to_reference(env.reference_step)
    np.testing.assert_allclose(env.imitation_terms(), 1.0, atol=1e-6)


@pytest.mark.parametrize("betas", [None, [2.0, 0.0, 0.0], [-2.0, 1.0]])
def test_betas_change_masses_and_lengths_and_feet_stay_grounded(betas, smpl):
    env = MimicEnv(clip=make_clip("walk"), character="smpl", betas=betas)
    m, m0 = env.model, smpl.model
    thigh = np.linalg.norm(m.body_pos[_body(m, "left_knee")])
    thigh0 = np.linalg.norm(m0.body_pos[_body(m0, "left_knee")])
    if betas is None:
        assert m.body_mass.sum() == m0.body_mass.sum() and thigh == thigh0
    else:
        assert abs(m.body_mass.sum() / m0.body_mass.sum() - 1) > 0.1
        assert abs(thigh / thigh0 - 1) > 0.01
    # The model's bones are the retargeting skeleton's, so the reference fits this body.
    sk = env.char.skeleton
    np.testing.assert_allclose(m.body_pos[_body(m, "left_knee")], sk.offsets[sk.index("left_knee")],
                               atol=1e-9)
    # Retargeted to this body and grounded: the soles touch the floor without sinking into it
    # (the physics-rate resampling may cut a corner by under 1 mm) and stay within 3 cm of it.
    sole = _lowest_sole(env, env.ref.qpos[::5])
    assert -0.001 < sole.min() < 0.001 and sole.max() < 0.03


def test_upper_envelope_covers_the_signal_smoothly():
    from mimicgym.envs.mimic.reference import upper_envelope

    x = np.zeros(12)
    x[5], x[6] = 1.0, 0.5
    np.testing.assert_allclose(upper_envelope(x, 2), [0, .2, .4, .6, .8, 1, .9, .7, .5, .3, .1, 0])
    spike = np.zeros(8)
    spike[0] = 1.0  # a looping signal's spike reaches round to its end
    np.testing.assert_allclose(upper_envelope(spike, 1, wrap=True),
                               [1, 2 / 3, 1 / 3, 0, 0, 0, 1 / 3, 2 / 3])
    noise = np.random.default_rng(0).random(50)
    assert (upper_envelope(noise, 3) >= noise - 1e-12).all()  # up to the mean's rounding
    np.testing.assert_array_equal(upper_envelope(noise, 0), noise)


def test_deepmimic_run_is_grounded_at_its_stance_level_not_its_deepest_heel_strike():
    # DeepMimic's run dips a heel 6 cm below its stance level at heel strike; grounding the
    # whole clip on that point left the SMPL run 7 cm above the floor on its median frame.
    env = MimicEnv(clip="run", character="smpl")
    sole = _lowest_sole(env, env.ref.qpos[::20])  # every clip frame (30 Hz)
    assert sole.min() > -0.001  # nowhere in the floor
    assert np.median(sole) < 0.025  # was 0.072
    # The lift is smooth: the root's vertical velocity stays within DeepMimic's own run.
    assert np.abs(env.ref.qvel[:, 2]).max() < 1.2


def test_smpl_betas_validated():
    with pytest.raises(ValueError, match="betas must be a finite 1-D array"):
        make_character("smpl", betas=[np.nan])
    with pytest.raises(ValueError, match="betas must be a finite 1-D array"):
        make_character("smpl", betas=np.zeros(50))


def test_rsi_and_early_termination(walk_env):
    env = walk_env
    assert env.observation_space.shape == (431,)
    check_rsi(env, 6)
    # Only the feet may touch the ground on a walk.
    allowed = np.flatnonzero(env._contact_ok[env.char.body_ids])
    assert {env.char.joints[i].name for i in allowed} == set(FEET)
    # Zero offsets: the character falls and a non-foot body touches the ground.
    fall = MimicEnv(clip=make_clip("walk"), character="smpl", rsi=False)
    fall.reset(seed=0)
    for step in range(1, 150):
        _, _, terminated, truncated, _ = fall.step(ZERO)
        if terminated:
            break
    assert terminated and not truncated and 10 < step < 150 and fall._bad_contact()
    # Switched off: the same fall runs to the time limit.
    off = MimicEnv(clip=make_clip("walk"), character="smpl", rsi=False, early_termination=False,
                   episode_seconds=3.0)
    off.reset(seed=0)
    for step in range(1, 91):
        _, _, terminated, truncated, _ = off.step(ZERO)
        assert not terminated
        if truncated:
            break
    assert step == 90 and off.data.qpos[2] < 0.5  # it did fall


def test_api_checks_and_random_steps_stay_finite():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("mimicgym/MimicWalk-v0", character="smpl")
    assert env.action_space.shape == (69,) and env.observation_space.shape == (431,)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(MimicEnv(clip=make_clip("run"), character="smpl"), warn=True)
    assert random_rollout_episodes(env, 1_000) > 5


def test_rgb_render_shows_body_and_ghost():
    env = MimicEnv(clip=make_clip("walk"), character="smpl", betas=[1.0],
                   render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert env._renderer.model.nq == 2 * env.model.nq  # the ghost has the same (shaped) body
    np.testing.assert_array_equal(env._renderer.model.body_mass[1:25], env.model.body_mass[1:])
    assert 0.005 < ghost_coverage(env, frame) < 0.5  # the ghost covers part of the picture, not all
    env.close()
