"""examples/torch/train_gpt.py: it trains with an Opal spec, matches torch.optim.AdamW, and a
run resumed from its checkpoint prints the same losses as an unbroken one."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINER = os.path.join(ROOT, "examples", "torch", "train_gpt.py")
SMALL = ["--d", "32", "--ctx", "32", "--batch", "8", "--log-every", "5", "--eval-every", "1000", "--threads", "1"]


def run(data, *args):
    out = subprocess.run([sys.executable, TRAINER, "--data", data, *SMALL, *args], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


class Example(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # text of the repository's own docs: no download in tests
        cls.dir = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.dir.name, "text.txt")
        with open(cls.data, "w") as f:
            for name in ("README.md", os.path.join("docs", "language.md")):
                with open(os.path.join(ROOT, name)) as src:
                    f.write(src.read())

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_trains_and_matches_torch_adamw(self):
        ours = run(self.data, "--spec", "adamw", "--lr", "3e-3", "--hp", "wd=0.01", "--steps", "40")
        theirs = run(self.data, "--spec", "torch.adamw", "--lr", "3e-3", "--hp", "wd=0.01", "--steps", "40")
        self.assertLess(ours[-1]["loss"], ours[0]["loss"] - 0.5)
        for a, b in zip(ours, theirs):
            self.assertEqual(a["step"], b["step"])
            self.assertAlmostEqual(a["loss"], b["loss"], delta=1e-4 * abs(b["loss"]))

    def test_resume_continues_the_same_run(self):
        ck = os.path.join(self.dir.name, "ck.pt")
        full = run(self.data, "--spec", "soap", "--lr", "3e-3", "--steps", "30")
        run(self.data, "--spec", "soap", "--lr", "3e-3", "--steps", "15", "--save", ck)
        rest = run(self.data, "--spec", "soap", "--lr", "3e-3", "--steps", "30", "--resume", ck)
        logged = {r["step"] for r in full}
        strip = lambda rs: [(r["step"], r["loss"]) for r in rs if r["step"] > 15 and r["step"] in logged]
        self.assertEqual(strip(full), strip(rest))
        self.assertEqual(len(strip(full)), 3)


if __name__ == "__main__":
    unittest.main()
