"""examples/torch/train_gpt.py: it trains with an Opal spec, matches torch.optim.AdamW, a run
resumed from its checkpoint prints the same losses as an unbroken one, and two processes
(torchrun) train as one and save a checkpoint one process resumes."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAINER = os.path.join(ROOT, "examples", "torch", "train_gpt.py")
SMALL = ["--d", "32", "--ctx", "32", "--batch", "8", "--log-every", "5", "--eval-every", "1000", "--threads", "1"]


def run(data, *args, ranks=1):
    """The trainer's JSON lines; with ranks > 1 as torchrun starts it (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT: Debian's torch 1.13 torchrun fails under Python 3.11)."""
    cmd = [sys.executable, TRAINER, "--data", data, *SMALL, *args]
    if ranks == 1:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines()]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1",
                                       MASTER_PORT=str(port), OMP_NUM_THREADS="1")) for r in range(ranks)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            raise AssertionError(f"a rank failed ({p.returncode}): {err[-2000:]}")
    return [json.loads(line) for line in outs[0][0].splitlines()]


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

    def test_two_processes_train_as_one_and_resume_in_one(self):
        ck = os.path.join(self.dir.name, "ck2.pt")
        # (AdamW: Muon's orthogonalization amplifies the rounding of the averaged gradient to ~1e-5 in 10 steps)
        one = run(self.data, "--spec", "adamw", "--lr", "3e-3", "--steps", "20")
        two = run(self.data, "--spec", "adamw", "--lr", "3e-3", "--steps", "10", "--save", ck, ranks=2)
        rest = run(self.data, "--spec", "adamw", "--lr", "3e-3", "--steps", "20", "--resume", ck)
        self.assertEqual([r["step"] for r in two], [1, 5, 10])  # rank 0 alone logs
        logged = {r["step"] for r in one}
        both = two + [r for r in rest if r["step"] > 10 and r["step"] in logged]
        self.assertEqual(len(both), len(one))
        for a, b in zip(one, both):
            self.assertEqual(a["step"], b["step"])
            self.assertAlmostEqual(a["loss"], b["loss"], delta=1e-5 * abs(a["loss"]))


if __name__ == "__main__":
    unittest.main()
