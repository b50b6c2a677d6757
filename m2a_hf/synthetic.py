"""A synthetic multi-attribute review set where the attributes matter by construction (for the demo and tests).

Each review's rating (1–5) is driven by three things:

* the **text**: a latent sentiment `s ~ N(0, 1)` that the generated sentence reveals only through noisy phrases;
* the **user**: a leniency `l_u ~ N(0, σ_user)` (harsh raters and generous raters write the same words);
* the **item**: a quality `q_i ~ N(0, σ_item)`.

`rating = clip(round(3 + 1.1·s + l_u + q_i + ε), 1, 5)` with ε ~ N(0, 0.35). A text-only model cannot see `l_u` or
`q_i`; a model that knows the user and item can. A share of the users appears only in the test split ("unseen"),
so results can be split by seen / unseen users. Everything is generated in code from a seed: no review text ships.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset, DatasetDict


_OPENINGS = ["i bought this", "got this", "ordered the", "picked up this", "received my", "tried the", "we use this"]
_PRODUCTS = [
    "jacket",
    "blender",
    "lamp",
    "backpack",
    "kettle",
    "novel",
    "headset",
    "sweater",
    "tent",
    "mixer",
    "camera",
    "desk chair",
    "phone case",
    "water bottle",
    "board game",
    "coffee grinder",
]
# Phrases by sentiment level 0 (very negative) .. 4 (very positive); a review draws phrases near its level.
_PHRASES = [
    ["it broke within a week", "total waste of money", "the worst purchase i have made", "it stopped working at once"],
    ["not what i expected", "the quality is poor", "it feels cheap", "several problems from day one"],
    ["it does the job", "average at best", "some good parts and some bad", "nothing special about it"],
    ["works well so far", "good value for the price", "solid and reliable", "pretty happy with it"],
    ["absolutely love it", "exceeded every expectation", "best purchase this year", "fantastic quality throughout"],
]
_DETAILS = [
    "delivery was on time",
    "the box was plain",
    "my sister has one too",
    "it came in blue",
    "the manual is short",
    "i use it every day",
    "it arrived on a monday",
    "the colour matches the photo",
]


def make_synthetic_reviews(
    num_users: int = 80,
    num_items: int = 30,
    reviews_per_user: int = 30,
    unseen_user_fraction: float = 0.2,
    user_scale: float = 0.9,
    item_scale: float = 0.5,
    seed: int = 0,
) -> DatasetDict:
    """Generate the synthetic review set.

    Args:
        num_users: Users in total; `unseen_user_fraction` of them review only in the test split.
        num_items: Items.
        reviews_per_user: Reviews written by each user.
        unseen_user_fraction: Share of users held out of train/validation (cold-start users).
        user_scale: Standard deviation of user leniency (how much the user matters).
        item_scale: Standard deviation of item quality.
        seed: Random seed; the same seed gives the same data.

    Returns:
        A `DatasetDict` (train 80 % / validation 10 % / test 10 % of the seen users' reviews, plus all reviews of
        the unseen users in test) with columns `text`, `label` (rating − 1, 5 classes), `user`, `item`.
    """
    if not 0 <= unseen_user_fraction < 1:
        raise ValueError(f"`unseen_user_fraction` must be in [0, 1), got {unseen_user_fraction!r}.")
    if num_users < 2 or num_items < 1 or reviews_per_user < 1:
        raise ValueError(
            f"need num_users >= 2, num_items >= 1, reviews_per_user >= 1; got {num_users}, {num_items}, {reviews_per_user}."
        )
    rng = np.random.default_rng(seed)
    leniency = rng.normal(0.0, user_scale, num_users)
    quality = rng.normal(0.0, item_scale, num_items)
    num_unseen = int(round(num_users * unseen_user_fraction))
    unseen = set(rng.choice(num_users, size=num_unseen, replace=False).tolist())

    rows: dict[str, list] = {"text": [], "label": [], "user": [], "item": [], "_unseen": []}
    for user in range(num_users):
        for _ in range(reviews_per_user):
            item = int(rng.integers(num_items))
            sentiment = rng.normal()
            level = int(np.clip(np.round(2 + 1.1 * sentiment + rng.normal(0, 0.8)), 0, 4))  # what the text shows
            phrases = [_PHRASES[int(np.clip(level + rng.integers(-1, 2) * (rng.random() < 0.3), 0, 4))]]
            text = (
                f"{rng.choice(_OPENINGS)} {rng.choice(_PRODUCTS)}. {rng.choice(phrases[0])}, "
                f"{rng.choice(_PHRASES[level])}. {rng.choice(_DETAILS)}."
            )
            rating = int(
                np.clip(np.round(3 + 1.1 * sentiment + leniency[user] + quality[item] + rng.normal(0, 0.35)), 1, 5)
            )
            rows["text"].append(text)
            rows["label"].append(rating - 1)
            rows["user"].append(f"user_{user:04d}")
            rows["item"].append(f"item_{item:03d}")
            rows["_unseen"].append(user in unseen)

    order = rng.permutation(len(rows["text"]))
    seen_idx = [int(i) for i in order if not rows["_unseen"][i]]
    unseen_idx = [int(i) for i in order if rows["_unseen"][i]]
    n_train, n_dev = int(0.8 * len(seen_idx)), int(0.1 * len(seen_idx))
    splits = {
        "train": seen_idx[:n_train],
        "validation": seen_idx[n_train : n_train + n_dev],
        "test": seen_idx[n_train + n_dev :] + unseen_idx,
    }
    columns = ("text", "label", "user", "item")
    return DatasetDict(
        {name: Dataset.from_dict({c: [rows[c][i] for i in idx] for c in columns}) for name, idx in splits.items()}
    )


__all__ = ["make_synthetic_reviews"]
