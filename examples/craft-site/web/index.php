<?php
/**
 * Front controller (Craft layout: web/index.php is the only PHP entry
 * point; nginx sends every request that is not a static file here).
 */

define('CRAFT_BASE_PATH', dirname(__DIR__));

require CRAFT_BASE_PATH . '/vendor/autoload.php';

$config = require CRAFT_BASE_PATH . '/config/general.php';

(new Acme\Greeter\App($config))->run($_SERVER);
