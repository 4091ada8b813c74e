"""The autograder: a trusted judge and an untrusted notebook, in separate processes.

``wire``       what crosses between them, and how (the trust boundary)
``link``       requests, replies, proxies and remote gradients over that boundary
``sandbox``    the student process's isolation (namespaces, an unprivileged user, limits)
``forkserver`` a warm process that starts sandboxed student processes quickly
``student``    the student process: runs the notebook, then answers the judge
``judge``      runs every test against proxies, decides every score
``batch``      ``make grade``: a folder of submissions into a gradebook and feedback
``assign``     ``make assign``: master notebooks into student notebooks and autograders
``gradescope`` the autograder zip's entry point
``hostile``    broken and dishonest submissions, with the grade each must get
``runs``       a grading run's folder read back, for the instructor's tools below
``report``     ``make report``: a run's scores, tests, failures and times, as HTML and CSV
``similarity`` ``make similarity``: pairs of submissions that share code, ranked, side by side
``export``     ``make export``: a run's gradebook as Canvas imports it, and keyed by student
``regrade``    ``make grade GRADE_ARGS="--only ... --students ..."``: some questions or rows again, into a new run
``written``    the written questions a person grades: listed in feedback, answers gathered for the grader
"""
