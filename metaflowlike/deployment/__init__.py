"""What every production exporter (Step Functions, Argo Workflows) shares.

An exporter is a plugin that turns a flow into an orchestrator's document and deploys
it. To keep the two from drifting apart, every fact they share has one owner here, and
none of it imports a cloud SDK:

- ``schedule.py``: ``@schedule(...)`` and its cron expression in both dialects;
- ``naming.py``: the deployment's name (``@project``, ``--branch``, ``--production``,
  ``--name``) and each target's rules for names;
- ``inputs.py``: the Parameters as workflow inputs, ``trigger --PARAM v`` parsing, and
  their conversion when a deployed run starts;
- ``plan.py``: the neutral description of the flow a compiler walks (``build_plan``),
  each step's container command, and the deploy-time checks every target shares;
- ``entry.py``: ``deployed-step``, the command those containers run, and the
  environment variables through which an orchestrator gives a task its ids.

A compiler only translates a ``DeploymentPlan`` and passes the ``entry.ENV_*``
variables; it never builds a ``step`` command or reads a decorator itself. Exporters
add their command group (``step-functions``, ``argo-workflows``) to a flow's command
line through the ``metaflowlike.cli_commands`` entry point (``cli_plugins.py``).
"""
