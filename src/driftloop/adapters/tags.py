"""The tag that marks what driftloop creates outside CloudFormation as belonging to one stack.

The Lambdas create the endpoint, its configs, the models, the model package group and the training jobs;
``sam delete`` does not know them. Each carries ``driftloop:stack = <stack name>`` (the functions'
``STACK_NAME``), which is how ``driftloop teardown`` tells this stack's resources from another's.
"""

from __future__ import annotations

STACK_TAG = "driftloop:stack"


def stack_tags(stack_name: str) -> dict[str, str]:
    """``{STACK_TAG: stack_name}``, empty when the stack is unknown (a run outside a deployed stack).

    Example
    -------
    >>> stack_tags("shop-recs")
    {'driftloop:stack': 'shop-recs'}
    >>> stack_tags("")
    {}
    """
    return {STACK_TAG: stack_name} if stack_name else {}


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """The AWS ``Tags`` shape, sorted by key.

    Example
    -------
    >>> tag_list({"b": "2", "a": "1"})
    [{'Key': 'a', 'Value': '1'}, {'Key': 'b', 'Value': '2'}]
    """
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]
