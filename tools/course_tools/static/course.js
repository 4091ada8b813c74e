/* The course's addition to the theme's scripts, loaded on every page by tools/course_tools/book.py.

   Wide formulas scroll sideways (pydata-sphinx-theme gives display formulas overflow: auto).
   The book takes formulas out of the Tab order (_config.yml: MathJax's inTabOrder), so a keyboard
   user could not scroll a formula wider than the column: those formulas, and only those, go back
   into the Tab order, after MathJax has typeset the page and whenever the window is resized. */
(function () {
  "use strict";

  function scrolls(math) {
    var overflow = getComputedStyle(math).overflowX;
    return (overflow === "auto" || overflow === "scroll") && math.scrollWidth > math.clientWidth + 1;
  }

  function reachWideFormulas() {
    document.querySelectorAll("mjx-container").forEach(function (math) {
      var wide = scrolls(math);
      if (wide && math.tabIndex < 0) {
        math.setAttribute("tabindex", "0");
        math.dataset.courseScrolls = "true";
      } else if (!wide && math.dataset.courseScrolls) {
        math.setAttribute("tabindex", "-1");
        delete math.dataset.courseScrolls;
      }
    });
  }

  window.addEventListener("load", function () {
    var mathjax = window.MathJax;
    if (mathjax && mathjax.startup && mathjax.startup.promise) {
      mathjax.startup.promise.then(reachWideFormulas);
    }
  });
  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(reachWideFormulas, 150);
  });
})();
