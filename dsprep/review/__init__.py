"""``dsprep review``: a local page to look through a data set and fix its labels.

* :mod:`dsprep.review.session`  the state of one review (the loaded data set, file versions, thumbnails, history);
  library calls only, no HTTP;
* :mod:`dsprep.review.server`   HTTP on loopback: the random token, the JSON API, the page's static files;
* ``static/``                   the page (plain HTML, JavaScript and CSS; no build step).
"""
