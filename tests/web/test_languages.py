"""One rule for comparing language codes across courses, classes and the page's locale."""
from appliance.languages import base_language


def test_base_language_of_every_form_a_code_arrives_in():
    assert [base_language(c) for c in ("es", "es-MX", "es_ES", "ES", "", None)] == ["es", "es", "es", "es", "", ""]
