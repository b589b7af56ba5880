"""The classic ETL flow of Prefect 1's docs."""
from cairnflow import task, Flow


@task
def extract():
    return [1, 2, 3]


@task
def transform(data):
    return [i * 10 for i in data]


@task
def load(data):
    return "loaded {}".format(sum(data))


with Flow("ETL") as flow:
    e = extract()
    t = transform(e)
    l = load(t)

state = flow.run()
print("RESULT:", state.result[l].result)
