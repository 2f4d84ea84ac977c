import kling_compose


def test_public_api_is_pinned():
    assert kling_compose.__all__ == [
        "Diagnostic", "Location", "RunOptions", "UserError", "build_plan", "load_storyboard",
        "run_plan",
    ]
    for name in kling_compose.__all__:
        assert getattr(kling_compose, name) is not None
