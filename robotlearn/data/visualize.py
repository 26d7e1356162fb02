"""Dataset plots (PNG per episode: actions and low-dim observations over time) and a video grid (mp4:
several episodes side by side per camera), for eyeballing demos before training on them."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from robotlearn.data.loader import load_demos


def plot_episodes(root: str | Path, out: str | Path, episodes: list[int]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demos = load_demos(root, episodes=episodes)
    feats = demos.meta.features
    keys = [k for k, f in feats.items() if f["dtype"] == "float32" and (k == "action" or k.startswith("observation."))]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, e in enumerate(episodes):
        ep = demos.episode(i)
        t = ep["timestamp"]
        fig, axes = plt.subplots(len(keys), 1, figsize=(8, 1.8 * len(keys)), sharex=True, squeeze=False)
        for ax, key in zip(axes[:, 0], keys, strict=True):
            ax.plot(t, ep[key].reshape(len(t), -1))
            ax.set_ylabel(key.replace("observation.", ""), fontsize=8)
        src = ep["source"]
        for name, color in (("human", "tab:green"), ("correction", "tab:orange"), ("rewind", "tab:red")):
            mask = src == name
            if mask.any():
                axes[0, 0].fill_between(t, 0, 1, where=mask, color=color, alpha=0.15,
                                        transform=axes[0, 0].get_xaxis_transform(), label=name)
        axes[-1, 0].set_xlabel("time (s)")
        outcome = f", success={bool(ep['next.success'][-1])}" if "next.success" in ep else ""  # LeRobot has none
        fig.suptitle(f"episode {e}: {len(t)} steps{outcome}")
        fig.tight_layout()
        path = out / f"episode_{e:04d}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def video_grid(root: str | Path, out: str | Path, episodes: list[int], cols: int = 4) -> list[Path]:
    """One mp4 per camera: episodes tiled in a grid, shorter ones frozen on their last frame."""
    demos = load_demos(root, episodes=episodes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for key in demos.meta.video_keys:
        clips = [demos.episode(i)[key] for i in range(len(episodes))]
        h, w = clips[0].shape[1:3]
        rows = -(-len(clips) // cols)
        ncols = min(cols, len(clips))
        path = out / f"grid_{key.replace('observation.images.', '')}.mp4"
        writer = imageio.get_writer(path, format="FFMPEG", fps=demos.meta.fps, codec="libx264", macro_block_size=1,
                                    pixelformat="yuv420p", ffmpeg_log_level="error")
        for t in range(max(len(c) for c in clips)):
            canvas = np.zeros((rows * h, ncols * w, 3), np.uint8)
            for i, clip in enumerate(clips):
                r, c = divmod(i, cols)
                canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = clip[min(t, len(clip) - 1)]
            writer.append_data(canvas)
        writer.close()
        paths.append(path)
    return paths
