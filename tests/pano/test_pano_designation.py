"""How a tooth of a result is named in its numbering (overlay labels)."""

from dentalai.task_json import tooth_designation


def test_fdi_result_names_teeth_by_fdi() -> None:
    assert tooth_designation({"fdi": 55, "number": 55, "universalLabel": "A"}, "FDI") == "55"
    assert tooth_designation({"fdi": 16, "number": 16, "universalLabel": "3"}, "FDI") == "16"


def test_universal_result_names_primary_teeth_by_letter() -> None:
    assert tooth_designation({"fdi": 55, "number": 0, "universalLabel": "A"}, "UNIVERSAL") == "A"
    assert tooth_designation({"fdi": 16, "number": 3, "universalLabel": "3"}, "UNIVERSAL") == "3"
    # A result made before universalLabel existed keeps its number.
    assert tooth_designation({"fdi": 16, "number": 3}, "UNIVERSAL") == "3"
