"""With a model configured, its schema-checked classification can only make Assist more careful: an invalid
answer, a confidence under the L1 threshold or a disagreement on a write hands the ticket over; agreement
lets the rules' automatic action stand. Real Ollama simulator, real provider."""

import json

import pytest

from widip.functions.assist import model_check
from widip.functions.llm.ollama_provider import OllamaProvider


def view_of(ollama, reply):
    state, url = ollama
    state.push([reply])
    view = model_check.ask(OllamaProvider(url, timeout=5.0), "Mot de passe oublié", "J'ai oublié mon mot de passe.")
    sent = state.requests[-1]["body"]
    assert sent["format"]["required"] == ["category", "confidence", "reason"]  # the schema reaches the model
    return view


def answer(category, confidence):
    return {"text": json.dumps({"category": category, "confidence": confidence, "reason": "Demande claire."})}


@pytest.mark.parametrize("reply, veto", [
    (answer("RESET_MDP", 0.93), None),
    (answer("RESET_MDP", 0.42), "sous le seuil"),
    (answer("AUTRE", 0.95), "pas d'accord"),
    (answer("DEBLOCAGE_COMPTE", 0.95), "pas d'accord"),
    ({"text": '{"category": "RESET_MDP", "confidence": 1.7, "reason": ""}'}, "hors schéma"),
    ({"text": "Je pense que c'est un mot de passe."}, "illisible"),
])
def test_the_model_may_only_veto_an_automatic_action(ollama, reply, veto):
    objection = model_check.objection(view_of(ollama, reply), "RESET_MDP", 0.80)
    assert (objection is None) if veto is None else (veto in objection)


def test_a_provider_that_fell_back_to_rules_has_no_say():
    from widip.functions.llm.rules import RulesProvider

    assert model_check.ask(RulesProvider(), "Mot de passe oublié", "") is None
