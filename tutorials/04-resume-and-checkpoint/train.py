"""A "training" loop that checkpoints every epoch, crashes, and finishes after resume.

python train.py run                # crashes at epoch 3 (CRASH_AT_EPOCH, default 3)
CRASH_AT_EPOCH=-1 python train.py resume   # continues from the last checkpoint
"""

import json
import os

from metaflowlike import FlowSpec, Parameter, checkpoint, current, step


class TrainLoopFlow(FlowSpec):
    """Fit y = 2x with gradient descent, saving the weights after every epoch."""

    epochs = Parameter("epochs", default=6, help="Epochs to train.")

    @step
    def start(self):
        self.data = [(x / 10, 2 * x / 10) for x in range(10)]
        self.next(self.train)

    @checkpoint
    @step
    def train(self):
        state_file = os.path.join(current.checkpoint.directory, "state.json")
        if current.checkpoint.is_loaded:
            with open(state_file) as f:
                state = json.load(f)
            print(f"Restored checkpoint {current.checkpoint.info['id']}: epoch {state['epoch']}")
        else:
            state = {"epoch": 0, "w": 0.0}
        self.epochs_run_here = []
        crash_at = int(os.environ.get("CRASH_AT_EPOCH", "3"))
        while state["epoch"] < self.epochs:
            epoch = state["epoch"]
            if epoch == crash_at:
                raise RuntimeError(
                    f"Simulated crash at epoch {epoch} (set CRASH_AT_EPOCH=-1 to stop it)"
                )
            for x, y in self.data:
                state["w"] += 0.5 * (y - state["w"] * x) * x
            state["epoch"] = epoch + 1
            self.epochs_run_here.append(epoch)
            with open(state_file, "w") as f:
                json.dump(state, f)
            current.checkpoint.save(name="weights", metadata={"epoch": state["epoch"]})
            print(f"epoch {epoch}: w={state['w']:.4f}")
        self.w = state["w"]
        self.next(self.end)

    @step
    def end(self):
        print(
            f"trained w={self.w:.4f} (target 2.0); epochs run in the last attempt: {self.epochs_run_here}"
        )


if __name__ == "__main__":
    TrainLoopFlow()
