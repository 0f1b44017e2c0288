"""``@parallel`` with ``self.next(self.train, num_parallel=N)``: a gang of N tasks that
run at the same time, know their place through ``current.parallel`` and are joined in
node order. Real flows, read back through the client."""

from __future__ import annotations

from metaflowlike import Flow

HEADER = "import os, socket, time\nfrom metaflowlike import FlowSpec, step, current, parallel\n"

GANG_FLOW = (
    HEADER
    + """
class GangFlow(FlowSpec):
    @step
    def start(self):
        self.base = 10
        self.next(self.train, num_parallel=3)

    @parallel
    @step
    def train(self):
        info = current.parallel
        self.node_index = info.node_index
        self.num_nodes = info.num_nodes
        self.main_ip = info.main_ip
        self.env_index = os.environ["MF_PARALLEL_NODE_INDEX"]
        port = int(os.environ["GANG_PORT"])
        # The members meet: the control task (node 0) listens and every worker
        # connects to it, which only works if they all run at the same time.
        if info.node_index == 0:
            server = socket.create_server((info.main_ip, port))
            server.settimeout(60)
            peers = []
            for _ in range(info.num_nodes - 1):
                conn, _ = server.accept()
                peers.append(int(conn.recv(16)))
                conn.close()
            self.peers = sorted(peers)
        else:
            for _ in range(600):
                try:
                    conn = socket.create_connection((info.main_ip, port))
                    break
                except OSError:
                    time.sleep(0.1)
            conn.sendall(str(info.node_index).encode())
            conn.close()
        self.value = self.base + info.node_index
        self.next(self.join)

    @step
    def join(self, inputs):
        self.indices = [i.node_index for i in inputs]
        self.values = [i.value for i in inputs]
        self.peers = inputs[0].peers
        self.merge_artifacts(inputs, include=["base", "num_nodes", "main_ip"])
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    GangFlow()
"""
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_gang_runs_together_and_is_joined_in_node_order(make_flow):
    flow = make_flow(GANG_FLOW)
    # one worker slot: the gang still starts all three members together
    flow.run("run", "--max-workers", "1", env={"GANG_PORT": str(_free_port())})
    run = Flow("GangFlow").latest_run
    assert run.successful
    data = run["join"].task.data
    assert data.indices == [0, 1, 2] and data.values == [10, 11, 12]
    assert data.peers == [1, 2]  # the control task heard from both workers
    assert data.num_nodes == 3 and data.main_ip == "127.0.0.1"
    members = sorted(run["train"], key=lambda t: t.data.node_index)
    assert [t.data.env_index for t in members] == ["0", "1", "2"]


def test_a_failing_member_stops_its_gang(make_flow):
    source = GANG_FLOW.replace(
        "        port = int(",
        "        if info.node_index == 2:\n            raise RuntimeError('node 2 broke')\n        port = int(",
    )
    flow = make_flow(source)
    proc = flow.run("run", env={"GANG_PORT": str(_free_port())}, check=False)
    assert proc.returncode != 0
    run = Flow("GangFlow").latest_run
    assert not run.successful and "join" not in [s.id for s in run]
    members = list(run["train"])
    assert len(members) == 3
    broke = [t for t in members if "node 2 broke" in str(t.exception)]
    assert len(broke) == 1
    # the control task (node 0, started first) waited for node 2 and was stopped
    # rather than left hanging; node 1 either finished or was stopped too
    control = min(members, key=lambda t: int(t.id))
    assert not control.successful and "of its gang failed" in control.stderr
    for task in members:
        stopped = "of its gang failed" in task.stderr
        assert task.pathspec == broke[0].pathspec or task.successful or stopped


def test_parallel_graph_rules(make_flow):
    flow = make_flow(
        HEADER
        + """
class BadGangFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train, num_parallel=2)

    @step
    def train(self):
        self.next(self.after)

    @parallel
    @step
    def after(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BadGangFlow()
"""
    )
    proc = flow.run("check", check=False)
    assert proc.returncode != 0
    err = proc.stderr
    assert 'goes to "train", which has no @parallel decorator' in err
    assert (
        "is a @parallel step but is not reached with self.next(self.after, num_parallel=N)" in err
    )
    assert 'a @parallel step must go to a join, but "end" takes no inputs' in err
    assert f"{flow.path}:" in err
