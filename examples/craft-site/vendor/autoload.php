<?php

// autoload.php (Composer layout; written by hand for this example, no
// Composer run needed).

require_once __DIR__ . '/composer/autoload_real.php';

return ComposerAutoloaderInitSlateExample::getLoader();
