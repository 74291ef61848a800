"""Training history: one record per epoch to JSON and CSV, and a PNG of the curves."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from glioedge.fileio import atomic_write_bytes, atomic_write_text


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


class History:
    """Epoch records kept in ``history.json`` (nested) and ``history.csv`` (flat columns)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.json_path = self.out_dir / "history.json"
        self.records: list[dict[str, Any]] = []
        if self.json_path.is_file():
            self.records = json.loads(self.json_path.read_text())

    def truncate(self, epochs_done: int) -> None:
        """Forget records after ``epochs_done`` (a resumed run re-does them)."""
        self.records = [r for r in self.records if r["epoch"] < epochs_done]

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.json_path, json.dumps(self.records, indent=1))
        flat = [_flatten(r) for r in self.records]
        columns = sorted({k for r in flat for k in r}, key=lambda k: (k != "epoch", k))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
        atomic_write_text(self.out_dir / "history.csv", text.getvalue())

    def plot(self, path: Path | None = None) -> Path | None:
        """Loss curves and validation Dice to ``curves.png``; None without matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        path = path or self.out_dir / "curves.png"
        epochs = [r["epoch"] for r in self.records]
        fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
        for term in sorted({k for r in self.records for k in r.get("train", {})}):
            ax_loss.plot(epochs, [r["train"].get(term) for r in self.records], label=term)
        ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss terms")
        if ax_loss.lines:
            ax_loss.legend(fontsize=7)
        for r_name in ("teacher", "student"):
            val = [(r["epoch"], r["val"][r_name]) for r in self.records if r_name in r.get("val", {})]
            for region in ("WT", "TC", "ET"):
                if val:
                    ax_dice.plot(
                        [e for e, _ in val],
                        [v[region]["dice"]["mean"] for _, v in val],
                        marker="o",
                        linestyle="-" if r_name == "student" else "--",
                        label=f"{r_name} {region}",
                    )
        ax_dice.set(xlabel="epoch", ylabel="Dice", title="validation Dice", ylim=(0, 1))
        if ax_dice.lines:
            ax_dice.legend(fontsize=7)
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=90)
        plt.close(fig)
        return atomic_write_bytes(path, png.getvalue())
