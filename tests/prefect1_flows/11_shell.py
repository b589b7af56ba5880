"""ShellTask from prefect.tasks.shell."""
from cairnflow import Flow
from cairnflow.tasks.shell import ShellTask

shell = ShellTask(helper_script="GREETING=hi", return_all=True)

with Flow("shell") as flow:
    lines = shell(command="echo $GREETING; echo $WHO", env={"WHO": "there"})
    failing = ShellTask(name="failing")(command="echo about to fail; exit 2")

state = flow.run()
assert state.result[failing].is_failed()
assert "exit code 2" in state.result[failing].message
print("RESULT:", state.result[lines].result)
