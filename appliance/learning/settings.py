"""The ``[learning]`` section: learner model, recommendations and grading."""
from __future__ import annotations

from appliance.config import section, setting


@section("learning")
class LearningSettings:
    """Personalisation on the box."""

    target_success: float = setting(0.75, "Predicted success the recommender aims for (desirable difficulty).")
    mastery_threshold: float = setting(0.85, "Predicted success above which a skill counts as mastered (Next up moves on, a review card starts, the grid says Mastered, and a lesson whose skills are all mastered is done).")
    mastery_min_answers: int = setting(3, "Graded answers on a skill before it can count as mastered, however sure the learner model is (a strong student's first answer on a new skill is a good sign, not mastery); a skill with fewer questions needs one answer per question. Also the answers a struggling student gives on a skill before Next up sends them back to its lesson, and the questions of a lesson answered right before mastering its skills finishes it.")
    learner_model: str = setting("learner", "Model (in the inference repository) that predicts a student's success; when it is not loaded, mastery and recommendations use a rule estimate and the status says why.")
    embedding_model: str = setting("minilm", "Sentence-embedding model that grades free text by meaning and powers search; when it is not loaded, free-text answers wait for the teacher and search matches words.")
    desired_retention: float = setting(0.9, "FSRS: chance of still knowing a mastered skill when its review comes due (higher means more frequent reviews).")
    max_review_interval_days: int = setting(180, "FSRS: longest gap between two reviews of a mastered skill, in days.")
    review_below_confidence: float = setting(0.5, "Free-text grades the model is less confident about than this are listed first for the teacher to check.")
    search_results: int = setting(8, "Most results a search shows.")
    search_word_weight: float = setting(0.3, "How much the query's words count next to meaning in a search hit's score (IDF-weighted share of the query's words the item contains; 0 = meaning only). Helps most in languages the encoder knows less well than English.")
    search_min_similarity: float = setting(0.25, "Search hits less similar than this to the query (cosine) are not shown.")
    search_min_margin: float = setting(0.15, "A search hit must score at least this much above the query's median score over the course's lessons and questions: a query about nothing in the course (a pet, a game, keyboard mashing) is about as close to everything, and finds nothing instead of a page of look-alike results. Courses of fewer than 20 lessons and questions skip it; 0 turns it off.")
