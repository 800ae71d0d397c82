"""GridWorldEnv: textbook models, P dict vs model(), stepping, rendering, bad input."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mimicgym  # noqa: F401  (registers the ids)
from mimicgym.envs import GRIDWORLDS, render
from mimicgym.envs.gridworld import GridWorldEnv
from mimicgym.envs.maps import open_grid

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
IDS = [f"mimicgym/{name}" for name in GRIDWORLDS]
VARIANTS = [
    ("mimicgym/GridWorld-v0", {"slip": 0.2}),
    ("mimicgym/WindyGridWorld-v0", {"king_moves": True}),
    ("mimicgym/WindyGridWorld-v0", {"king_moves": True, "stay_action": True, "stochastic_wind": True}),
    ("mimicgym/RandomWalk-v0", {"n_states": 19}),
    ("mimicgym/CliffWalking-v0", {"slip": 0.1}),
]


def uniform_policy_values(model, gamma: float) -> np.ndarray:
    """v_pi of the equiprobable policy from the dense model: solve (I - gamma P_pi) v = r_pi
    on the non-terminal states (terminal values are 0)."""
    p_pi, r_pi = model.P.mean(axis=1), model.R.mean(axis=1)
    live = ~model.terminal
    values = np.zeros(model.n_states)
    values[live] = np.linalg.solve(np.eye(live.sum()) - gamma * p_pi[np.ix_(live, live)], r_pi[live])
    return values


def run(env, actions, seed=0):
    obs, _ = env.reset(seed=seed)
    states, total = [obs], 0.0
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        states.append(obs)
        total += reward
    return states, total, terminated


# --- textbook definitions -------------------------------------------------------------

def test_sutton_4x4_random_policy_values():  # Example 4.1, Figure 4.1 (k = infinity)
    model = gym.make("mimicgym/SuttonGrid4x4-v0").unwrapped.model()
    expected = [[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14], [-22, -20, -14, 0]]
    np.testing.assert_allclose(uniform_policy_values(model, 1.0).reshape(4, 4), expected, atol=0.1)
    assert model.terminal.reshape(4, 4)[[0, 3], [0, 3]].all() and model.terminal.sum() == 2


def test_gridworld_5x5_values():  # Example 3.5 (Figure 3.2) and Example 3.8 (Figure 3.5)
    env = gym.make("mimicgym/GridWorld5x5-v0").unwrapped
    model, gamma = env.model(), env.gamma
    assert gamma == 0.9 and not model.terminal.any()
    v_random = [[3.3, 8.8, 4.4, 5.3, 1.5], [1.5, 3.0, 2.3, 1.9, 0.5], [0.1, 0.7, 0.7, 0.4, -0.4],
                [-1.0, -0.4, -0.4, -0.6, -1.2], [-1.9, -1.3, -1.2, -1.4, -2.0]]
    np.testing.assert_allclose(uniform_policy_values(model, gamma).reshape(5, 5), v_random, atol=0.1)
    v = np.zeros(model.n_states)
    for _ in range(500):  # value iteration, contraction 0.9**500
        v = (model.R + gamma * model.P @ v).max(axis=1)
    v_star = [[22.0, 24.4, 22.0, 19.4, 17.5], [19.8, 22.0, 19.8, 17.8, 16.0], [17.8, 19.8, 17.8, 16.0, 14.4],
              [16.0, 17.8, 16.0, 14.4, 13.0], [14.4, 16.0, 14.4, 13.0, 11.7]]
    np.testing.assert_allclose(v.reshape(5, 5), v_star, atol=0.1)
    # every action from A=(0,1) goes to A'=(4,1) with +10, from B=(0,3) to B'=(2,3) with +5
    np.testing.assert_array_equal(model.next_states[1, :, 0], 21)
    np.testing.assert_array_equal(model.rewards[1, :, 0], 10.0)
    np.testing.assert_array_equal(model.next_states[3, :, 0], 13)
    np.testing.assert_array_equal(model.rewards[3, :, 0], 5.0)
    assert model.rewards[0, UP, 0] == -1.0 and model.next_states[0, UP, 0] == 0  # off-grid
    assert model.rewards[0, DOWN, 0] == 0.0 and model.next_states[0, DOWN, 0] == 5


def test_cliff_walking():  # Example 6.6
    env = gym.make("mimicgym/CliffWalking-v0")
    states, total, terminated = run(env, [UP] + [RIGHT] * 11 + [DOWN])
    assert total == -13 and terminated and states[-1] == 47
    obs, _ = env.reset(seed=0)
    assert obs == 36
    obs, reward, terminated, _, _ = env.step(RIGHT)  # into the cliff: -100, back to start
    assert (obs, reward, terminated) == (36, -100.0, False)
    states, total, terminated = run(env, [UP, RIGHT, DOWN])  # from (2, 1) down into the cliff
    assert states[-1] == 36 and total == -102


def test_windy_gridworld_optimal_episodes():  # Example 6.5, Exercise 6.9
    states, total, terminated = run(gym.make("mimicgym/WindyGridWorld-v0"), [RIGHT] * 9 + [DOWN] * 4 + [LEFT] * 2)
    assert terminated and total == -15 and states[-1] == 3 * 10 + 7
    # the wind of the column being left acts: right from column 3 (wind 1) ends a row up
    assert [divmod(s, 10) for s in states[:6]] == [(3, 0), (3, 1), (3, 2), (3, 3), (2, 4), (1, 5)]
    up_right, down_right = 4, 5
    king = gym.make("mimicgym/WindyGridWorld-v0", king_moves=True)
    assert king.unwrapped.action_names[up_right] == "UpRight"
    states, total, terminated = run(king, [RIGHT, RIGHT] + [down_right] * 5)
    assert terminated and total == -7


def test_windy_stochastic_wind_and_stay():  # Exercise 6.10
    env = gym.make("mimicgym/WindyGridWorld-v0", king_moves=True, stay_action=True, stochastic_wind=True)
    model = env.unwrapped.model()
    assert model.n_actions == 9 and env.unwrapped.action_names[8] == "Stay"
    s = 3 * 10 + 6  # column 6 has wind 2: staying ends 1, 2 or 3 cells up
    outcome = dict(zip(model.next_states[s, 8].tolist(), model.probs[s, 8].tolist()))
    assert outcome == pytest.approx({2 * 10 + 6: 1 / 3, 1 * 10 + 6: 1 / 3, 0 * 10 + 6: 1 / 3})
    s = 3 * 10 + 1  # calm column: deterministic
    assert model.probs[s, RIGHT].max() == 1.0 and model.next_states[s, RIGHT, 0] == 32


def test_random_walk_true_values():  # Examples 6.2 and 7.1
    env = gym.make("mimicgym/RandomWalk-v0")
    assert env.action_space.n == 2 and env.observation_space.n == 7 and env.reset(seed=0)[0] == 3
    np.testing.assert_allclose(uniform_policy_values(env.unwrapped.model(), 1.0)[1:-1], np.arange(1, 6) / 6, atol=1e-12)
    env19 = gym.make("mimicgym/RandomWalk-v0", n_states=19)
    values = uniform_policy_values(env19.unwrapped.model(), 1.0)[1:-1]
    np.testing.assert_allclose(values, np.arange(-9, 10) / 10, atol=1e-12)
    assert env19.reset(seed=0)[0] == 10


# --- model structure ------------------------------------------------------------------

def test_slip_model_by_hand():
    env = GridWorldEnv(map=["S.G"], slip=0.4)
    model = env.model()
    # right from (0,0): executed w.p. 0.6 + 0.4/4; up, down, left bump and stay (0.3)
    # merged and sorted by state; the empty third slot points at s with probability 0
    np.testing.assert_array_equal(model.next_states[0, RIGHT], [0, 1, 0])
    np.testing.assert_allclose(model.probs[0, RIGHT], [0.3, 0.7, 0.0])
    np.testing.assert_array_equal(model.rewards[0, RIGHT], [-1.0, -1.0, 0.0])
    # K = 3 from the middle cell: left, right, or bump (up/down) in place
    assert model.next_states.shape == (3, 4, 3)
    np.testing.assert_allclose(model.probs[1, UP], [0.1, 0.8, 0.1])
    assert model.terminal.tolist() == [False, False, True]
    assert model.initial.tolist() == [1.0, 0.0, 0.0]


def test_walls_cells_rewards_jumps_and_wind():
    #  #..     wind 1 up in column 0; 'x' jumps to G; (2, 0) has a cell reward
    #  3xS
    #  ..G
    env = GridWorldEnv(map=["#..", "3xS", "..G"], rewards={"x": 7.0, (2, 0): -4.0}, bump_reward=-2.0,
                       jumps={"x": ("G", 50.0)}, wind=[1, 0, 0])
    model = env.model()

    def outcome(s, a):
        assert model.probs[s, a, 0] == 1.0
        return int(model.next_states[s, a, 0]), float(model.rewards[s, a, 0])

    assert model.terminal[0] and (model.next_states[0] == 0).all() and (model.rewards[0] == 0).all()
    assert model.terminal.tolist() == [True] + [False] * 7 + [True]
    assert outcome(5, RIGHT) == (5, -2.0)  # bump into the edge
    assert outcome(5, LEFT) == (4, 7.0)  # character reward
    assert all(outcome(4, a) == (8, 50.0) for a in range(4))  # jump
    assert outcome(7, RIGHT) == (8, -1.0)  # goal: step reward, terminal
    assert outcome(7, LEFT) == (6, -4.0)  # cell reward
    assert outcome(6, UP) == (3, 3.0)  # digit reward; the wind is stopped by the wall
    assert outcome(6, RIGHT) == (4, 7.0)  # wind of the column left (0) pushes up one row
    assert outcome(3, UP) == (3, -2.0)  # bump into the wall
    assert outcome(3, DOWN) == (3, -1.0)  # pushed back by the wind: not a bump


@pytest.mark.parametrize("env_id,kwargs", [(i, {}) for i in IDS] + VARIANTS)
def test_p_dict_matches_model(env_id, kwargs):
    env = gym.make(env_id, **kwargs).unwrapped
    model, table = env.model(), env.P
    assert len(table) == model.n_states and all(len(table[s]) == model.n_actions for s in table)
    used = model.probs > 0
    for s in range(0, model.n_states, max(1, model.n_states // 40)):
        for a in range(model.n_actions):
            expected = [(p, n, r, bool(model.terminal[n])) for n, p, r in zip(
                model.next_states[s, a][used[s, a]].tolist(), model.probs[s, a][used[s, a]].tolist(),
                model.rewards[s, a][used[s, a]].tolist())]
            assert sorted(table[s][a]) == sorted(expected)
            assert sum(p for p, *_ in table[s][a]) == pytest.approx(1.0)
    assert model.grid_shape == env.grid_shape and model.n_states == np.prod(model.grid_shape)


def test_single_env_step_frequencies_match_model():
    env = GridWorldEnv(layout="cliff_walking", slip=0.5)
    model, n = env.model(), 20_000
    s, a = 25, RIGHT  # (2, 1): slips go up, down (into the cliff, back to start) or left
    env.reset(seed=3)
    counts = {}
    for _ in range(n):
        env.reset(options={"state": s})
        nxt, reward, *_ = env.step(a)
        counts[(nxt, reward)] = counts.get((nxt, reward), 0) + 1
    expected = {(int(ns), float(r)): p
                for ns, r, p in zip(model.next_states[s, a], model.rewards[s, a], model.probs[s, a]) if p > 0}
    assert set(counts) == set(expected) and len(expected) == 4
    for key, p in expected.items():
        assert abs(counts[key] / n - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_seeded_trajectories_are_reproducible():
    def trajectory(seed):
        env = gym.make("mimicgym/GridWorld-v0", slip=0.3)
        env.reset(seed=seed)
        env.action_space.seed(seed)
        return [env.step(env.action_space.sample())[:2] for _ in range(300)]

    assert trajectory(1) == trajectory(1)
    assert trajectory(1) != trajectory(2)


def test_reset_options_and_truncation():
    env = gym.make("mimicgym/SuttonGrid4x4-v0")
    assert env.reset(options={"state": 5})[0] == 5
    with pytest.raises(ValueError, match="non-wall state"):
        gym.make("mimicgym/GridWorld-v0").reset(options={"state": 0})
    env.reset(seed=0)
    for t in range(200):  # max_episode_steps=200: bumping left at (3, 0) forever
        _, _, terminated, truncated, _ = env.step(LEFT)
    assert truncated and not terminated and t == 199


def test_default_layout_shortest_path():
    env = gym.make("mimicgym/GridWorld-v0").unwrapped
    model, start = env.model(), env.reset(seed=0)[0]
    v = np.zeros(model.n_states)
    for _ in range(200):  # undiscounted value iteration: minus the shortest distance to G
        v = model.q_from_v(v, 1.0).max(axis=1)
    assert start == 11 and v[start] == -13.0
    assert model.terminal.sum() == 3 + (env.config.chars == "#").sum()  # G, two traps, walls


def test_multiline_string_map():
    env = GridWorldEnv(map="""
        S.#
        .CG
    """)
    assert env.grid_shape == (2, 3) and env.model().next_states[3, RIGHT, 0] == 0  # cliff -> start


def test_open_grid():
    grid = open_grid(3, 4)
    assert grid == ("S...", "....", "...G")
    with pytest.raises(ValueError, match="outside"):
        open_grid(3, 4, goal=(3, 0))


# --- env API --------------------------------------------------------------------------

@pytest.mark.parametrize("env_id,kwargs", [(i, {}) for i in IDS] + VARIANTS)
def test_check_env(env_id, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(env_id, render_mode="rgb_array", cell_size=4, **kwargs).unwrapped)
        sb3_check_env(gym.make(env_id, **kwargs).unwrapped)


def test_render_pixels_and_text():
    env = GridWorldEnv(map=["S#G"], render_mode="rgb_array", cell_size=8)
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (8, 24, 3) and image.dtype == np.uint8
    expected = np.empty((8, 24, 3), dtype=np.uint8)
    for col, colour in enumerate([render.COLOURS["S"], render.COLOURS["#"], render.COLOURS["G"]]):
        expected[:, 8 * col:8 * col + 8] = colour
    expected[0, :] = expected[:, 0::8] = render.GRID_LINE
    for y in range(8):  # the agent: disk of radius 0.35 * 8 around pixel (3.5, 3.5)
        for x in range(8):
            if (y - 3.5) ** 2 + (x - 3.5) ** 2 <= 2.8 ** 2:
                expected[y, x] = render.AGENT
    np.testing.assert_array_equal(image, expected)
    tiny = GridWorldEnv(map=["S.", ".G"], render_mode="rgb_array", cell_size=1)
    tiny.reset()
    np.testing.assert_array_equal(tiny.render(), [[render.AGENT, render.COLOURS["."]],
                                                  [render.COLOURS["."], render.COLOURS["G"]]])

    text = gym.make("mimicgym/CliffWalking-v0", render_mode="ansi")
    text.reset(seed=0)
    assert text.render() == "............\n" * 3 + "@CCCCCCCCCCG\n"
    text.step(UP)
    assert text.render() == "  (Up)\n" + "............\n" * 2 + "@...........\nSCCCCCCCCCCG\n"


@pytest.mark.parametrize("kwargs,message", [
    ({"map": ["S.x"]}, r"unknown map character 'x' at row 0, column 2"),
    ({"map": ["...", ".G."]}, r"exactly one start cell 'S', found 0"),
    ({"map": ["S..", ".S."]}, r"found 2 \(at \(0, 0\), \(1, 1\)\)"),
    ({"map": ["S..", ".G"]}, r"row 1 has 2 characters"),
    ({"slip": -0.1}, r"slip must be a probability in \[0, 1\], got -0.1"),
    ({"slip": 1.5}, r"got 1.5"),
    ({"layout": "windy", "wind": [1, 2, 3]}, r"one entry per column \(10\), got 3"),
    ({"layout": "nope"}, r"unknown layout 'nope'"),
    ({"layout": "cliff_walking", "n_states": 19}, r"n_states=19 only applies"),
    ({"layout": "random_walk", "n_states": 4}, r"got 4"),
    ({"layout": "random_walk", "king_moves": True}, r"left/right only"),
    ({"layout": "windy", "map": ["S.G"]}, r"layout='windy'"),
    ({"rewards": {"G": float("nan")}}, r"rewards\['G'\] must be a finite number"),
    ({"rewards": {(9, 9): 1.0}}, r"\(9, 9\)"),
    ({"layout": "windy", "wind": [0.5] * 10}, r"wind entries must be integers"),
    ({"map": ["S.A"], "jumps": {"A": ("z", 1.0)}}, r"character 'z' must appear exactly once"),
    ({"render_mode": "human"}, r"'human'"),
    ({"cell_size": 0}, r"cell_size must be a positive int.*got 0"),
])
def test_bad_input_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GridWorldEnv(**kwargs)


@pytest.mark.parametrize("action", [4, -1, 1.5, "a", None])
def test_invalid_action_raises(action):
    env = GridWorldEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=repr(action).replace(".", r"\.")):
        env.step(action)
    assert env.step(np.int64(1))[0] == 12  # numpy ints are fine


def test_every_gridworld_takes_one_list_of_options():
    from mimicgym.envs.batched import BatchedGridWorld
    from mimicgym.envs.grid_dynamics import GridOptions

    assert GridWorldEnv.Options is BatchedGridWorld.Options is GridOptions
    with pytest.raises(TypeError, match=r"unexpected keyword 'kings'.*king_moves"):
        GridWorldEnv("windy", kings=True)
    with pytest.raises(TypeError, match=r"'kings'"):
        BatchedGridWorld(2, "windy", kings=True)
    single = gym.make("mimicgym/WindyGridWorld-v0", king_moves=True, stay_action=True).unwrapped
    batched = BatchedGridWorld(2, "windy", king_moves=True, stay_action=True)
    assert single.action_space.n == batched.single_action_space.n == 9
    np.testing.assert_array_equal(single.config.moves, batched.config.moves)
