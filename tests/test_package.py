import subprocess
import sys


def test_import_is_cheap():
    code = (
        "import sys, grasp_env, grasp_env.data, grasp_env.lm.presets, grasp_env.metrics\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import grasp_env pulled in: {out.stdout.strip()}"


def test_presets_are_complete():
    from grasp_env.lm.presets import PRESETS, get_preset

    assert set(PRESETS) == {"tiny", "default", "paper"}
    paper = get_preset("paper")
    assert paper.data_source == {"qa": "mlqa", "summarization": "xlsum"}
    assert (paper.sizes.train, paper.sizes.dev, paper.sizes.micro_dev, paper.sizes.test) == (
        50,
        50,
        16,
        100,
    )
    assert get_preset("default").sizes.test >= 300


def test_unknown_preset_names_the_choices():
    import pytest

    from grasp_env.lm.presets import get_preset

    with pytest.raises(ValueError, match=r"preset='huge'.*default"):
        get_preset("huge")
